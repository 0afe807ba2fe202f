"""Mutant m13_rotary_not_cast_back: apply_rotary returns float32 for bfloat16 inputs."""
# %%
import torch


def apply_rotary(x, cos, sin):
    x1, x2 = x.to(torch.promote_types(x.dtype, torch.float32)).chunk(2, dim=-1)
    out = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out
