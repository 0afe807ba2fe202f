"""Multi-head attention two ways: a loop over heads (the textbook) and one batched module (what runs).

The loop view: head ``i`` has its own ``W_i^Q, W_i^K, W_i^V`` of shape ``(d_model, d_k)``; its outputs are
concatenated and projected by ``W^O``. The tensor view stacks every head's matrices into one
``(d_model, 3 * d_model)`` matrix ``qkv``, so a single matmul computes Q, K and V of all heads, and one
batched attention call handles all heads at once. :func:`load_loop_into_batched` copies one into the
other, and the tests prove the two equal.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attention import attention, scaled_dot_product_attention
from .embedding import RotaryEmbedding

__all__ = ["KVCache", "AttentionHead", "MultiHeadAttentionLoop", "MultiHeadAttention", "GroupedQKV",
           "load_loop_into_batched"]


class KVCache:
    """Keys and values of the tokens seen so far, for one attention layer during generation.

    Shapes:
        ``k``, ``v``: ``(B, nh, L, hs)`` where ``L`` grows by the number of new tokens on each call.
    """

    def __init__(self) -> None:
        # BEGIN SOLUTION ch04
        self.k: Tensor | None = None
        self.v: Tensor | None = None
        # END SOLUTION

    def __len__(self) -> int:
        # BEGIN SOLUTION ch04
        return 0 if self.k is None else self.k.size(-2)
        # END SOLUTION

    def update(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append the new ``(B, nh, T, hs)`` keys/values and return all of them."""
        # BEGIN SOLUTION ch04
        self.k = k if self.k is None else torch.cat([self.k, k], dim=-2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=-2)
        return self.k, self.v
        # END SOLUTION


class AttentionHead(nn.Module):
    """One head: its own query, key and value projections ``d_model -> head_dim``.

    Shapes:
        x ``(B, T, d_model)``, context ``(B, S, d_model)`` -> ``(B, T, head_dim)``.
    """

    def __init__(self, d_model: int, head_dim: int, *, bias: bool = True) -> None:
        super().__init__()
        # BEGIN SOLUTION ch04
        self.q = nn.Linear(d_model, head_dim, bias=bias)
        self.k = nn.Linear(d_model, head_dim, bias=bias)
        self.v = nn.Linear(d_model, head_dim, bias=bias)
        # END SOLUTION

    def forward(self, x: Tensor, context: Tensor | None = None, mask: Tensor | None = None,
                is_causal: bool = False) -> Tensor:
        # BEGIN SOLUTION ch04
        context = x if context is None else context
        q = self.q(x)[:, None]  # (B, 1, T, hs): a singleton head axis so masks broadcast as usual
        k, v = self.k(context)[:, None], self.v(context)[:, None]  # (B, 1, S, hs)
        return scaled_dot_product_attention(q, k, v, mask, is_causal=is_causal)[:, 0]
        # END SOLUTION


class MultiHeadAttentionLoop(nn.Module):
    """``MultiHead(Q, K, V) = Concat(head_1, …, head_h) W^O`` computed head by head (slow, clear).

    Args:
        d_model: model width; must be divisible by ``n_heads``.
        n_heads: number of heads; each has ``d_model // n_heads`` dimensions.
        bias: biases in the projections.

    Shapes:
        x ``(B, T, d_model)`` -> ``(B, T, d_model)``.
    """

    def __init__(self, d_model: int, n_heads: int, *, bias: bool = True) -> None:
        super().__init__()
        # BEGIN SOLUTION ch04
        _check_heads(d_model, n_heads)
        self.n_heads = n_heads
        self.heads = nn.ModuleList(AttentionHead(d_model, d_model // n_heads, bias=bias) for _ in range(n_heads))
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        # END SOLUTION

    def forward(self, x: Tensor, context: Tensor | None = None, *, mask: Tensor | None = None,
                is_causal: bool = False) -> Tensor:
        # BEGIN SOLUTION ch04
        heads = [head(x, context, mask, is_causal) for head in self.heads]  # n_heads x (B, T, hs)
        return self.proj(torch.cat(heads, dim=-1))
        # END SOLUTION


class MultiHeadAttention(nn.Module):
    """Batched multi-head attention with a fused QKV projection: self- or cross-attention, KV cache.

    ``qkv.weight`` is ``[W^Q; W^K; W^V]`` stacked, the layout of ``nn.MultiheadAttention.in_proj_weight``.
    For self-attention one matmul gives Q, K and V; for cross-attention Q comes from ``x`` and K, V from
    ``context`` through the two halves of the same weight.

    Args:
        d_model: model width; must be divisible by ``n_heads``.
        n_heads: number of heads.
        bias: biases in ``qkv`` and ``proj``.
        dropout: dropout on the attention weights.
        fused: use ``F.scaled_dot_product_attention`` (flash / memory-efficient kernels) unless the
            weights are asked for; ``False`` always runs the written-out path.
        n_kv_heads: grouped-query attention (Ainslie et al. 2023; LLaMA 2/3): only this many key/value
            heads, each shared by ``n_heads / n_kv_heads`` query heads (self-attention only; see
            :class:`GroupedQKV`). ``None`` (default) means ``n_heads``: ordinary multi-head attention.

    Shapes:
        x ``(B, T, d_model)``, context ``(B, S, d_model)`` -> ``(B, T, d_model)``.
    """

    def __init__(self, d_model: int, n_heads: int, *, bias: bool = True, dropout: float = 0.0,
                 fused: bool = True, n_kv_heads: int | None = None) -> None:
        super().__init__()
        self.keep_weights = False  # set by tfmcourse.viz.record_attention to keep the last weights
        self.last_weights: Tensor | None = None
        # BEGIN SOLUTION ch04
        _check_heads(d_model, n_heads)
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.proj = nn.Linear(d_model, d_model, bias=bias)
        self.dropout = dropout
        self.fused = fused
        # END SOLUTION
        if n_kv_heads is not None and n_kv_heads != n_heads:  # grouped-query attention: a narrower qkv
            self.qkv = GroupedQKV(d_model, n_heads, n_kv_heads, bias=bias)

    def _split_heads(self, t: Tensor) -> Tensor:
        # BEGIN SOLUTION ch04
        B, T, _ = t.shape
        return t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, nh, T, hs)
        # END SOLUTION

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        *,
        mask: Tensor | None = None,
        is_causal: bool = False,
        cache: KVCache | None = None,
        rope: RotaryEmbedding | None = None,
        need_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Args:
            x: queries come from here ``(B, T, d_model)``.
            context: keys/values come from here (cross-attention); ``None`` for self-attention.
            mask: boolean, True = may attend, broadcastable to ``(B, nh, T, S)``.
            is_causal: causal self-attention (bottom-right aligned when a cache holds past tokens).
            cache: a :class:`KVCache` to read past keys/values from and append the new ones to.
            rope: rotate q and k with this :class:`RotaryEmbedding` (positions continue after the cache).
            need_weights: also return the attention weights ``(B, nh, T, S)``.
        """
        # BEGIN SOLUTION ch04
        B, T, C = x.shape
        if context is None:
            q, k, v = self.qkv(x).split(C, dim=2)  # 3 x (B, T, C) from one matmul
        else:
            w_q, w_kv = self.qkv.weight.split([C, 2 * C])
            b_q, b_kv = self.qkv.bias.split([C, 2 * C]) if self.qkv.bias is not None else (None, None)
            q = F.linear(x, w_q, b_q)
            k, v = F.linear(context, w_kv, b_kv).split(C, dim=2)  # (B, S, C) each
        q, k, v = self._split_heads(q), self._split_heads(k), self._split_heads(v)  # (B, nh, T|S, hs)
        if rope is not None:
            q, k = rope(q, k, offset=len(cache) if cache is not None else 0)
        if cache is not None:
            k, v = cache.update(k, v)  # (B, nh, S_past + T, hs)
        if is_causal and T == 1:
            is_causal = False  # a single new query may see every cached key
        dropout_p = self.dropout if self.training else 0.0
        weights = None
        if need_weights or self.keep_weights or not self.fused:
            y, weights = scaled_dot_product_attention(q, k, v, mask, is_causal=is_causal, dropout_p=dropout_p,
                                                      return_weights=True)
            if self.keep_weights:
                self.last_weights = weights.detach()
        else:
            y = attention(q, k, v, mask, is_causal=is_causal, dropout_p=dropout_p)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)  # re-assemble heads side by side
        y = self.proj(y)
        return (y, weights) if need_weights else y
        # END SOLUTION


class GroupedQKV(nn.Linear):
    """The ``qkv`` projection of grouped-query attention: ``n_kv_heads`` key/value heads, repeated.

    The weight is ``[W^Q; W^K; W^V]`` with ``W^K``, ``W^V`` of ``n_kv_heads * head_dim`` rows each (the
    parameters a GQA checkpoint holds). The output repeats every key/value head for its
    ``n_heads / n_kv_heads`` query heads, so it has the ``(B, T, 3 * d_model)`` layout of an ordinary
    ``qkv`` and any multi-head attention, yours included, runs on it unchanged and computes exactly what
    GQA computes. (The KV cache then holds the repeated heads: the parameter and matmul savings are
    kept, the cache-memory saving of GQA is not.)

    Shapes:
        ``(B, T, d_model)`` -> ``(B, T, 3 * d_model)``.
    """

    def __init__(self, d_model: int, n_heads: int, n_kv_heads: int, *, bias: bool = True) -> None:
        _check_heads(d_model, n_heads)
        if n_kv_heads < 1 or n_heads % n_kv_heads:
            raise ValueError(f"n_heads ({n_heads}) must be a multiple of n_kv_heads ({n_kv_heads})")
        super().__init__(d_model, d_model + 2 * n_kv_heads * (d_model // n_heads), bias=bias)
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, d_model // n_heads

    def forward(self, x: Tensor) -> Tensor:
        C, kv = self.in_features, self.n_kv_heads * self.head_dim
        q, k, v = super().forward(x).split([C, kv, kv], dim=-1)  # (B, T, C), 2 x (B, T, nkv * hs)
        group = self.n_heads // self.n_kv_heads
        k, v = (t.unflatten(-1, (self.n_kv_heads, self.head_dim)).repeat_interleave(group, dim=-2).flatten(-2)
                for t in (k, v))  # kv head j serves query heads j*group ... (j+1)*group - 1
        return torch.cat([q, k, v], dim=-1)


def load_loop_into_batched(loop: MultiHeadAttentionLoop, mha: MultiHeadAttention) -> MultiHeadAttention:
    """Copy per-head ``W_i^Q, W_i^K, W_i^V`` and ``W^O`` of ``loop`` into the fused layout of ``mha``."""
    with torch.no_grad():
        for j, name in enumerate(("q", "k", "v")):
            w = torch.cat([getattr(h, name).weight for h in loop.heads])  # (C, C): heads stacked by rows
            mha.qkv.weight[j * mha.d_model : (j + 1) * mha.d_model].copy_(w)
            if mha.qkv.bias is not None:
                b = torch.cat([getattr(h, name).bias for h in loop.heads])
                mha.qkv.bias[j * mha.d_model : (j + 1) * mha.d_model].copy_(b)
        mha.proj.load_state_dict(loop.proj.state_dict())
    return mha


def _check_heads(d_model: int, n_heads: int) -> None:
    if n_heads < 1 or d_model % n_heads:
        raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads}); "
                         f"pick n_heads from the divisors of d_model")
