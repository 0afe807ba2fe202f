"""Mutant m37_causal_mask_excludes_diagonal: causal_mask leaves out the diagonal: a query may not attend to its own position."""
# %%
import torch


def causal_mask(T, S=None, *, device=None):
    S = T if S is None else S
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T - 1)
