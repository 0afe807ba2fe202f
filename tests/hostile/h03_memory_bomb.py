"""Hostile: allocates far more memory than allowed, at import and in attention. Expect: MemoryError
reported, the masks earn their points, attention scores 0."""
# %%
hog = [bytearray(10**8) for _ in range(200)]  # 20 GB
# %%
import torch


def scaled_dot_product_attention(q, k, v, mask=None, **kwargs):
    block = torch.ones(10**11)  # 400 GB
    return block[: q.numel()].view_as(q)
