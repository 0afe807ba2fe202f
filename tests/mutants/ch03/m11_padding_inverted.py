"""Mutant m11_padding_inverted: padding_mask is True at the padding instead of the real tokens."""
# %%
import torch


def padding_mask(lengths, S=None):
    S = int(lengths.max()) if S is None else S
    keep = torch.arange(S, device=lengths.device)[None, :] >= lengths[:, None]
    return keep[:, None, None, :]
