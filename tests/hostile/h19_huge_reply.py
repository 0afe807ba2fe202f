"""Hostile: returns a stride-0 view of 2**32 elements (8 bytes of storage) from attention, and
implements the masks honestly. Expect: the worker cannot send it (it would have to be 32 GiB), that
test fails, the masks earn their points."""
# %%
import torch


def scaled_dot_product_attention(q, k, v, mask=None, **kwargs):
    return torch.zeros(1, dtype=torch.float64).expand(2**32)
