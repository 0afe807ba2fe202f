"""Mutant m17_odd_width_not_checked: an odd d_model is not checked, so a shape error (RuntimeError) comes out instead of a ValueError."""
# %%
import torch


def sinusoidal_encoding(n_positions, d_model, *, base=10000.0):
    pos = torch.arange(n_positions, dtype=torch.float32)[:, None]
    inv_freq = base ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    angles = pos * inv_freq
    pe = torch.empty(n_positions, d_model)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles)
    return pe
