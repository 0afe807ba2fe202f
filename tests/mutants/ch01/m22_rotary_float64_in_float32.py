"""Mutant m22_rotary_float64_in_float32: apply_rotary rotates float64 inputs in float32 (x.float() instead of promote_types)."""
# %%
import torch


def apply_rotary(x, cos, sin):
    x1, x2 = x.float().chunk(2, dim=-1)
    out = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.to(x.dtype)
