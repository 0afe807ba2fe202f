"""Mutant m36_post_ln_blocks: the encoder blocks are post-LN (norm_first=False), not pre-LN as ViT is."""
# %%
from torch import nn


class ViT(ViT):  # the correct ViT from above, but for what follows
    def __init__(self, config):
        super().__init__(config)
        c = config
        self.blocks = nn.ModuleList(
            EncoderBlock(c.d_model, c.n_heads, c.hidden, dropout=c.dropout, ffn=c.ffn, norm=c.norm,
                         norm_first=False, eps=1e-6)
            for _ in range(c.n_layers))
        self.apply(self._init_weights)
