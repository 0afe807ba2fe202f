"""Mutant m12_padding_flat: padding_mask returns (B, S) without the head and query axes."""
# %%
import torch


def padding_mask(lengths, S=None):
    S = int(lengths.max()) if S is None else S
    keep = torch.arange(S, device=lengths.device)[None, :] < lengths[:, None]
    return keep
