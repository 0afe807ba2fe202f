"""Mutant m34_padding_S_ignored: padding_mask ignores S and always pads to the longest length."""
# %%
import torch


def padding_mask(lengths, S=None):
    S = int(lengths.max())
    keep = torch.arange(S, device=lengths.device)[None, :] < lengths[:, None]
    return keep[:, None, None, :]
