# Shared honest cells: the two mask builders, written correctly (appended to some hostile submissions).
# %%
import torch


def causal_mask(T, S=None, *, device=None):
    S = T if S is None else S
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)


def padding_mask(lengths, S=None):
    S = int(lengths.max()) if S is None else S
    return (torch.arange(S)[None, :] < lengths[:, None])[:, None, None, :]
