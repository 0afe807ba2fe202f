"""Mutant m13_causal_top_left: the causal mask is aligned top-left when S != T."""
# %%
import torch


def causal_mask(T, S=None, *, device=None):
    S = T if S is None else S
    return torch.ones(T, S, dtype=torch.bool, device=device).tril()
