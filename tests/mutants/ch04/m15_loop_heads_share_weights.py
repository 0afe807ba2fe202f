"""Mutant m15_loop_heads_share_weights: every head of the loop is the same AttentionHead (one set of weights)."""
# %%
import torch
import torch.nn.functional as F
from torch import nn
from tfmcourse.attention import attention, scaled_dot_product_attention


def _check_heads(d_model, n_heads):
    if n_heads < 1 or d_model % n_heads:
        raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")


class MultiHeadAttentionLoop(nn.Module):
    def __init__(self, d_model, n_heads, *, bias=True):
        super().__init__()
        _check_heads(d_model, n_heads)
        self.n_heads = n_heads
        head = AttentionHead(d_model, d_model // n_heads, bias=bias)
        self.heads = nn.ModuleList([head] * n_heads)
        self.proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, x, context=None, *, mask=None, is_causal=False):
        heads = [head(x, context, mask, is_causal) for head in self.heads]
        return self.proj(torch.cat(heads, dim=-1))


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model, n_heads, *, bias=True, dropout=0.0, fused=True):
        super().__init__()
        _check_heads(d_model, n_heads)
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = dropout
        self.fused = fused

    def _split_heads(self, t):
        B, T, _ = t.shape
        return t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)

    def forward(self, x, context=None, *, mask=None, is_causal=False, cache=None, rope=None, need_weights=False):
        B, T, C = x.shape
        if context is None:
            q, k, v = self.qkv(x).split(C, dim=2)
        else:
            w_q, w_kv = self.qkv.weight.split([C, 2 * C])
            b_q, b_kv = self.qkv.bias.split([C, 2 * C]) if self.qkv.bias is not None else (None, None)
            q = F.linear(x, w_q, b_q)
            k, v = F.linear(context, w_kv, b_kv).split(C, dim=2)
        q, k, v = self._split_heads(q), self._split_heads(k), self._split_heads(v)
        if rope is not None:
            q, k = rope(q, k, offset=len(cache) if cache is not None else 0)
        if cache is not None:
            k, v = cache.update(k, v)
        if is_causal and T == 1:
            is_causal = False
        dropout_p = self.dropout if self.training else 0.0
        if need_weights or not self.fused:
            y, weights = scaled_dot_product_attention(q, k, v, mask, is_causal=is_causal, dropout_p=dropout_p,
                                                      return_weights=True)
        else:
            weights = None
            y = attention(q, k, v, mask, is_causal=is_causal, dropout_p=dropout_p)
        y = y.transpose(1, 2).reshape(B, T, C)
        y = self.proj(y)
        return (y, weights) if need_weights else y
