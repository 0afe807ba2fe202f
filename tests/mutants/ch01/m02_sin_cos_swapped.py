"""Mutant m02_sin_cos_swapped: cosines on the even columns, sines on the odd ones."""
# %%
import math

import torch
import torch.nn.functional as F
from torch import nn

# %%
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

# %%
class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size, d_model, *, scale=False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab_size, d_model))
        self.scale = math.sqrt(d_model) if scale else 1.0
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, idx):
        x = F.embedding(idx, self.weight)
        return x * self.scale if self.scale != 1.0 else x

# %%
class LearnedPositionalEmbedding(nn.Module):
    def __init__(self, max_len, d_model):
        super().__init__()
        self.max_len = max_len
        self.weight = nn.Parameter(torch.empty(max_len, d_model))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, T, offset=0):
        return self.weight[offset : offset + T]

# %%
def apply_rotary(x, cos, sin):
    x1, x2 = x.to(torch.promote_types(x.dtype, torch.float32)).chunk(2, dim=-1)
    out = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.to(x.dtype)
