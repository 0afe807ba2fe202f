"""Mutant m12_rotary_interleaved: rotates neighbouring pairs (x[2i], x[2i+1]) instead of the two halves."""
# %%
import torch


def apply_rotary(x, cos, sin):
    xf = x.to(torch.promote_types(x.dtype, torch.float32))
    x1, x2 = xf[..., 0::2], xf[..., 1::2]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
    return out.to(x.dtype)
