"""Mutant m06_no_sqrt_scale: scale=True does not multiply by sqrt(d_model)."""
# %%
import torch
import torch.nn.functional as F
from torch import nn


class TokenEmbedding(nn.Module):
    def __init__(self, vocab_size, d_model, *, scale=False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab_size, d_model))
        self.scale = 1.0
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, idx):
        x = F.embedding(idx, self.weight)
        return x * self.scale if self.scale != 1.0 else x
