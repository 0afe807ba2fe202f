"""Mutant m13_dropout_never_applied: the block ignores dropout (no dropout in training either)."""
# %%
from torch import nn
from tfmcourse.multihead import MultiHeadAttention
from tfmcourse.norm import RMSNorm


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
        self.attn = MultiHeadAttention(d_model, n_heads, bias=bias)
        self.norm2 = make_norm(norm, d_model, eps, bias)
        self.ffn = make_ffn(ffn, d_model, d_ff, 0.0, bias)
        self.dropout1 = nn.Identity()
        self.dropout2 = nn.Identity()

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
