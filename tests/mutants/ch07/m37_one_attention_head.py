"""Mutant m37_one_attention_head: the blocks are built with one attention head instead of config.n_heads."""
# %%
from torch import nn


class ViT(ViT):  # the correct ViT from above, but for what follows
    def __init__(self, config):
        super().__init__(config)
        c = config
        self.blocks = nn.ModuleList(
            EncoderBlock(c.d_model, 1, c.hidden, dropout=c.dropout, ffn=c.ffn, norm=c.norm, norm_first=True, eps=1e-6)
            for _ in range(c.n_layers))
        self.apply(self._init_weights)
