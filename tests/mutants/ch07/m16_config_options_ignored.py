"""Mutant m16_config_options_ignored: the blocks always use gelu + layernorm with 4*d_model, whatever the config says."""
# %%
from torch import nn


class ViT(ViT):  # the correct ViT from above, but for what follows
    def __init__(self, config):
        super().__init__(config)
        c = config
        self.blocks = nn.ModuleList(
            EncoderBlock(c.d_model, c.n_heads, 4 * c.d_model, dropout=c.dropout, norm_first=True, eps=1e-6)
            for _ in range(c.n_layers))
        self.apply(self._init_weights)
