"""Mutant m14_rotary_swapped_cos_sin: cos and sin are used the wrong way round (rotation by 90 degrees minus theta)."""
# %%
import torch


def apply_rotary(x, cos, sin):
    x1, x2 = x.to(torch.promote_types(x.dtype, torch.float32)).chunk(2, dim=-1)
    out = torch.cat((x1 * sin - x2 * cos, x1 * cos + x2 * sin), dim=-1)
    return out.to(x.dtype)
