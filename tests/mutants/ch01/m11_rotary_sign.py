"""Mutant m11_rotary_sign: the pairs are rotated by -theta instead of +theta."""
# %%
import torch


def apply_rotary(x, cos, sin):
    x1, x2 = x.to(torch.promote_types(x.dtype, torch.float32)).chunk(2, dim=-1)
    out = torch.cat((x1 * cos + x2 * sin, -x1 * sin + x2 * cos), dim=-1)
    return out.to(x.dtype)
