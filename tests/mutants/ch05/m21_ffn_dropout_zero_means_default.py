"""Mutant m21_ffn_dropout_zero_means_default: FeedForward treats dropout=0.0 as "not given" and uses 0.1."""
# %%
from torch import nn


class FeedForward(FeedForward):  # the correct FeedForward from above, but for what follows
    def __init__(self, d_model, d_ff, *, dropout=0.0, **kwargs):
        super().__init__(d_model, d_ff, dropout=dropout, **kwargs)
        self.dropout = nn.Dropout(dropout or 0.1)
