"""Mutant m06_causal_off_by_one: the causal mask lets each query see the next token too."""
# %%
import torch


def causal_mask(T, S=None, *, device=None):
    S = T if S is None else S
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T + 1)
