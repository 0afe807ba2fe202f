"""Mutant m29_dropout_zero_means_default: dropout=0.0 is taken as "not given" and replaced by 0.1 (`config.dropout or 0.1`)."""
# %%
from torch import nn


class ViT(ViT):  # the correct ViT from above, but for what follows
    def __init__(self, config):
        super().__init__(config)
        self.drop = nn.Dropout(config.dropout or 0.1)
