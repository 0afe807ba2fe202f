"""Mutant m42_dropout_rate_as_keep_probability: the token dropout is built as nn.Dropout(1 - dropout), taking the rate for a keep probability."""
# %%
from torch import nn


class ViT(ViT):  # the correct ViT from above, but for what follows
    def __init__(self, config):
        super().__init__(config)
        self.drop = nn.Dropout(1.0 - config.dropout)
