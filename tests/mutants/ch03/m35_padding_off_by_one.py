"""Mutant m35_padding_off_by_one: padding_mask keeps one padding position too many (j <= length instead of j < length)."""
# %%
import torch


def padding_mask(lengths, S=None):
    S = int(lengths.max()) if S is None else S
    keep = torch.arange(S, device=lengths.device)[None, :] <= lengths[:, None]
    return keep[:, None, None, :]
