"""Mutant m24_rotary_detached: apply_rotary detaches x, so no gradient reaches the queries and keys."""
# %%
import torch


def apply_rotary(x, cos, sin):
    x1, x2 = x.detach().to(torch.promote_types(x.dtype, torch.float32)).chunk(2, dim=-1)
    out = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.to(x.dtype)
