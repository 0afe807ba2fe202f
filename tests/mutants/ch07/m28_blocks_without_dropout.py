"""Mutant m28_blocks_without_dropout: config.dropout is used for the tokens but never passed to the encoder blocks."""
# %%
from torch import nn


class ViT(ViT):  # the correct ViT from above, but for what follows
    def __init__(self, config):
        super().__init__(config)
        c = config
        self.blocks = nn.ModuleList(
            EncoderBlock(c.d_model, c.n_heads, c.hidden, ffn=c.ffn, norm=c.norm, norm_first=True, eps=1e-6)
            for _ in range(c.n_layers))
        self.apply(self._init_weights)
