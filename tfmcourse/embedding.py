"""Token embeddings and the three ways to tell a Transformer where a token is.

* :class:`SinusoidalPositionalEncoding` — fixed sines and cosines of the original paper, added to the
  token embeddings.
* :class:`LearnedPositionalEmbedding` — one trained vector per position (GPT-2, BERT, ViT).
* :class:`RotaryEmbedding` — RoPE rotates queries and keys instead of adding anything to ``x``, so the
  attention score depends only on the *relative* position (LLaMA and most modern LMs).

Positions are dense vectors, never one-hot: a one-hot position would need as many dimensions as the
context is long and would carry no notion of "nearby".
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "TokenEmbedding",
    "sinusoidal_encoding",
    "SinusoidalPositionalEncoding",
    "LearnedPositionalEmbedding",
    "RotaryEmbedding",
    "apply_rotary",
]


class TokenEmbedding(nn.Module):
    """Look up a ``d_model`` vector for each token id.

    Args:
        vocab_size: number of token ids.
        d_model: embedding width.
        scale: multiply by ``sqrt(d_model)`` as in the original paper (so the embeddings are not
            drowned by the unit-scale sinusoidal positions).

    Shapes:
        ``(B, T)`` int64 -> ``(B, T, d_model)``.
    """

    def __init__(self, vocab_size: int, d_model: int, *, scale: bool = False) -> None:
        super().__init__()
        # BEGIN SOLUTION ch01
        self.weight = nn.Parameter(torch.empty(vocab_size, d_model))
        self.scale = math.sqrt(d_model) if scale else 1.0
        nn.init.normal_(self.weight, std=0.02)
        # END SOLUTION

    def forward(self, idx: Tensor) -> Tensor:
        # BEGIN SOLUTION ch01
        x = F.embedding(idx, self.weight)  # (B, T, C): row idx of the matrix, nothing more
        return x * self.scale if self.scale != 1.0 else x
        # END SOLUTION


def sinusoidal_encoding(n_positions: int, d_model: int, *, base: float = 10000.0) -> Tensor:
    """The table ``PE[pos, 2i] = sin(pos / base^(2i/d))``, ``PE[pos, 2i+1] = cos(pos / base^(2i/d))``.

    Shapes:
        returns ``(n_positions, d_model)`` float32.
    """
    # BEGIN SOLUTION ch01
    if d_model % 2:
        raise ValueError(f"sinusoidal encoding needs an even d_model, got {d_model}")
    pos = torch.arange(n_positions, dtype=torch.float32)[:, None]  # (P, 1)
    inv_freq = base ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)  # (d/2,)
    angles = pos * inv_freq  # (P, d/2)
    pe = torch.empty(n_positions, d_model)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles)
    return pe
    # END SOLUTION


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sinusoidal positions (no parameters), returned for positions ``offset … offset+T-1``.

    Shapes:
        ``forward(T)`` -> ``(T, d_model)``, broadcast-added to ``(B, T, d_model)`` by the caller.
    """

    def __init__(self, max_len: int, d_model: int, *, base: float = 10000.0) -> None:
        super().__init__()
        self.max_len = max_len
        self.register_buffer("pe", sinusoidal_encoding(max_len, d_model, base=base), persistent=False)

    def forward(self, T: int, offset: int = 0) -> Tensor:
        return self.pe[offset : offset + T]


class LearnedPositionalEmbedding(nn.Module):
    """A trained vector per position, as in GPT-2 and ViT.

    Shapes:
        ``forward(T)`` -> ``(T, d_model)``.
    """

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        # BEGIN SOLUTION ch01
        self.max_len = max_len
        self.weight = nn.Parameter(torch.empty(max_len, d_model))
        nn.init.normal_(self.weight, std=0.02)
        # END SOLUTION

    def forward(self, T: int, offset: int = 0) -> Tensor:
        # BEGIN SOLUTION ch01
        return self.weight[offset : offset + T]
        # END SOLUTION


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate pairs ``(x[..., i], x[..., i + hs/2])`` by the angles whose cos/sin are given.

    Shapes:
        x ``(B, nh, T, hs)``; cos, sin ``(T, hs/2)``; returns ``(B, nh, T, hs)`` in x's dtype.
    """
    # BEGIN SOLUTION ch01
    x1, x2 = x.to(torch.promote_types(x.dtype, torch.float32)).chunk(2, dim=-1)  # (B, nh, T, hs/2) each
    out = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.to(x.dtype)
    # END SOLUTION


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoPE, Su et al. 2021) for one attention head size.

    The query and key at positions ``m`` and ``n`` are rotated by angles ``m θ_i`` and ``n θ_i``; their
    dot product then depends on ``m - n`` only. Call it on ``q`` and ``k`` after splitting heads.

    Args:
        head_dim: size of one head (even).
        max_len: longest sequence to precompute angles for.
        base: frequency base (10000 as in the paper).
    """

    def __init__(self, head_dim: int, max_len: int, *, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head size, got {head_dim}")
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)  # (hs/2,)
        angles = torch.arange(max_len, dtype=torch.float32)[:, None] * inv_freq  # (L, hs/2)
        self.max_len = max_len
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, q: Tensor, k: Tensor, offset: int = 0) -> tuple[Tensor, Tensor]:
        """Rotate ``q`` and ``k`` ``(B, nh, T, hs)`` for positions ``offset … offset+T-1``.

        With a KV cache only the new tokens are passed (``offset`` = tokens already cached); the
        cache then stores keys that are already rotated.
        """
        T = q.size(-2)
        cos, sin = self.cos[offset : offset + T], self.sin[offset : offset + T]
        return apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
