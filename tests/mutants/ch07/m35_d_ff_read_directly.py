"""Mutant m35_d_ff_read_directly: the blocks get config.d_ff instead of config.hidden (None when d_ff is not set)."""
# %%
from torch import nn


class ViT(ViT):  # the correct ViT from above, but for what follows
    def __init__(self, config):
        super().__init__(config)
        c = config
        self.blocks = nn.ModuleList(
            EncoderBlock(c.d_model, c.n_heads, c.d_ff, dropout=c.dropout, ffn=c.ffn, norm=c.norm,
                         norm_first=True, eps=1e-6)
            for _ in range(c.n_layers))
        self.apply(self._init_weights)
