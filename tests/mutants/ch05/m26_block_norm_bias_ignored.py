"""Mutant m26_block_norm_bias_ignored: the block's norms always have a bias (bias=False reaches only the linear layers)."""
# %%
from tfmcourse.norm import build_norm


class EncoderBlock(EncoderBlock):  # the correct EncoderBlock from above, but for what follows
    def __init__(self, d_model, n_heads, d_ff, *, norm="layernorm", eps=1e-5, **kwargs):
        super().__init__(d_model, n_heads, d_ff, norm=norm, eps=eps, **kwargs)
        self.norm1 = build_norm(norm, d_model, eps=eps)
        self.norm2 = build_norm(norm, d_model, eps=eps)
