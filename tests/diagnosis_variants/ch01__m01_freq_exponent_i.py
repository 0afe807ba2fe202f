"""A student's own sinusoidal encoding, written with a loop over the feature pairs and math.pow, with the
exponent i/d instead of 2i/d. Expected diagnosis: m01_freq_exponent_i."""
# %%
import math

import torch


def sinusoidal_encoding(n_positions, d_model, *, base=10000.0):
    if d_model % 2 != 0:
        raise ValueError("d_model must be even")
    table = torch.zeros(n_positions, d_model)
    for i in range(d_model // 2):
        freq = 1.0 / math.pow(base, i / d_model)  # the mistake: should be 2 * i / d_model
        angle = torch.arange(n_positions, dtype=torch.float32) * freq
        table[:, 2 * i] = torch.sin(angle)
        table[:, 2 * i + 1] = torch.cos(angle)
    return table
