"""Mutant m27_block_eps_only_first_norm: eps reaches norm1 only; norm2 keeps the default eps."""
# %%
from tfmcourse.norm import build_norm


class EncoderBlock(EncoderBlock):  # the correct EncoderBlock from above, but for what follows
    def __init__(self, d_model, n_heads, d_ff, *, norm="layernorm", bias=True, **kwargs):
        super().__init__(d_model, n_heads, d_ff, norm=norm, bias=bias, **kwargs)
        self.norm2 = build_norm(norm, d_model, bias=bias)
