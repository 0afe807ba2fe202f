"""Mutant m01_ffn_no_bias: FeedForward never creates biases (bias=True ignored)."""
# %%
import torch
import torch.nn.functional as F
from torch import nn

from tfmcourse.multihead import MultiHeadAttention
from tfmcourse.norm import RMSNorm

# %%
class FeedForward(nn.Module):
    def __init__(self, d_model, d_ff, *, activation="relu", dropout=0.0, bias=True):
        super().__init__()
        acts = {"relu": nn.ReLU, "gelu": nn.GELU}
        if activation not in acts:
            raise ValueError(f"activation must be 'relu' or 'gelu', got {activation!r}")
        self.fc1 = nn.Linear(d_model, d_ff, bias=False)
        self.act = acts[activation]()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(d_ff, d_model, bias=False)

    def forward(self, x):
        return self.fc2(self.dropout(self.act(self.fc1(x))))

# %%
class SwiGLU(nn.Module):
    def __init__(self, d_model, d_ff, *, dropout=0.0, bias=False):
        super().__init__()
        self.fc1 = nn.Linear(d_model, 2 * d_ff, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(d_ff, d_model, bias=bias)

    def forward(self, x):
        gate, up = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(self.dropout(F.silu(gate) * up))

# %%
def make_norm(kind, d_model, eps, bias):
    if kind == "layernorm":
        return nn.LayerNorm(d_model, eps=eps, bias=bias)
    if kind == "rmsnorm":
        return RMSNorm(d_model, eps)
    raise ValueError(f"unknown norm {kind!r}")


def make_ffn(kind, d_model, d_ff, dropout, bias):
    if kind == "swiglu":
        return SwiGLU(d_model, d_ff, dropout=dropout, bias=bias)
    return FeedForward(d_model, d_ff, activation=kind, dropout=dropout, bias=bias)


class EncoderBlock(nn.Module):
    def __init__(self, d_model, n_heads, d_ff, *, dropout=0.0, ffn="relu", norm="layernorm", norm_first=True,
                 bias=True, eps=1e-5):
        super().__init__()
        self.norm_first = norm_first
        self.norm1 = make_norm(norm, d_model, eps, bias)
        self.attn = MultiHeadAttention(d_model, n_heads, bias=bias, dropout=dropout)
        self.norm2 = make_norm(norm, d_model, eps, bias)
        self.ffn = make_ffn(ffn, d_model, d_ff, dropout, bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x, mask=None, *, is_causal=False):
        def sa(h):
            return self.dropout1(self.attn(h, mask=mask, is_causal=is_causal))

        if self.norm_first:
            x = x + sa(self.norm1(x))
            x = x + self.dropout2(self.ffn(self.norm2(x)))
        else:
            x = self.norm1(x + sa(x))
            x = self.norm2(x + self.dropout2(self.ffn(x)))
        return x
