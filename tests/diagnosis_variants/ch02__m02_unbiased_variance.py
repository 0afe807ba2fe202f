"""A student's own LayerNorm, written out in full, whose variance divides by d - 1.
Expected diagnosis: m02_unbiased_variance."""
# %%
import torch
from torch import nn


class LayerNorm(nn.Module):
    def __init__(self, d_model, eps=1e-5, *, bias=True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model)) if bias else None

    def forward(self, x):
        z = x.double() if x.dtype == torch.float64 else x.float()
        d = z.shape[-1]
        centred = z - z.sum(dim=-1, keepdim=True) / d
        var = (centred * centred).sum(dim=-1, keepdim=True) / (d - 1)  # the mistake: d - 1 instead of d
        out = centred / torch.sqrt(var + self.eps) * self.weight
        if self.bias is not None:
            out = out + self.bias
        return out.to(x.dtype)
