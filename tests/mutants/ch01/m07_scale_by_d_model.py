"""Mutant m07_scale_by_d_model: scale=True multiplies by d_model instead of sqrt(d_model)."""
# %%
import torch
import torch.nn.functional as F
from torch import nn


class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size, d_model, *, scale=False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab_size, d_model))
        self.scale = float(d_model) if scale else 1.0
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, idx):
        x = F.embedding(idx, self.weight)
        return x * self.scale if self.scale != 1.0 else x
