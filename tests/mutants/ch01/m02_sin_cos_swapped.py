"""Mutant m02_sin_cos_swapped: cosines on the even columns, sines on the odd ones."""
# %%
import torch


def sinusoidal_encoding(n_positions, d_model, *, base=10000.0):
    if d_model % 2:
        raise ValueError(f"sinusoidal encoding needs an even d_model, got {d_model}")
    pos = torch.arange(n_positions, dtype=torch.float32)[:, None]
    inv_freq = base ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    angles = pos * inv_freq
    pe = torch.empty(n_positions, d_model)
    pe[:, 0::2] = torch.cos(angles)
    pe[:, 1::2] = torch.sin(angles)
    return pe
