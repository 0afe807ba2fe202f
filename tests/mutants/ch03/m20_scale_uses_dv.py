"""Mutant m20_scale_uses_dv: the default scale uses d_v = v.size(-1) instead of d_k = q.size(-1)."""
# %%
import math

_correct = scaled_dot_product_attention


def scaled_dot_product_attention(q, k, v, mask=None, *, scale=None, **kwargs):
    scale = 1.0 / math.sqrt(v.size(-1)) if scale is None else scale
    return _correct(q, k, v, mask, scale=scale, **kwargs)
