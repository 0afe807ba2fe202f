"""Mutant m36_causal_mask_S_ignored: causal_mask ignores S and always returns a square (T, T) mask."""
# %%
import torch


def causal_mask(T, S=None, *, device=None):
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()
