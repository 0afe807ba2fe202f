"""Mutant m23_rotary_assumes_4d: apply_rotary reshapes cos/sin to (1, 1, T, hs/2), so inputs without batch and head axes get the wrong shape."""
# %%
import torch


def apply_rotary(x, cos, sin):
    x1, x2 = x.to(torch.promote_types(x.dtype, torch.float32)).chunk(2, dim=-1)
    cos, sin = cos.reshape(1, 1, *cos.shape[-2:]), sin.reshape(1, 1, *sin.shape[-2:])
    out = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.to(x.dtype)
