"""Mutant m04_positions_from_one: sinusoidal positions start at 1 instead of 0."""
# %%
import torch


def sinusoidal_encoding(n_positions, d_model, *, base=10000.0):
    if d_model % 2:
        raise ValueError(f"sinusoidal encoding needs an even d_model, got {d_model}")
    pos = torch.arange(1, n_positions + 1, dtype=torch.float32)[:, None]
    inv_freq = base ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    angles = pos * inv_freq
    pe = torch.empty(n_positions, d_model)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles)
    return pe
