"""Mutant m39_causal_mask_ignores_device: causal_mask ignores device= and always builds the mask on the CPU."""
# %%
import torch


def causal_mask(T, S=None, *, device=None):
    S = T if S is None else S
    return torch.ones(T, S, dtype=torch.bool).tril(diagonal=S - T)
