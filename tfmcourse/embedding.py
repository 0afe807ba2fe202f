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
from functools import partial
from typing import Callable

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
        x ``(..., T, hs)``, e.g. ``(B, nh, T, hs)``; cos, sin ``(T, hs/2)``, or with leading axes that
        broadcast against x's (``(B, 1, T, hs/2)`` when each sequence has its own positions); returns x's
        shape in x's dtype (rotated in at least float32).
    """
    # BEGIN SOLUTION ch01
    x1, x2 = x.to(torch.promote_types(x.dtype, torch.float32)).chunk(2, dim=-1)  # (..., T, hs/2) each
    out = torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.to(x.dtype)
    # END SOLUTION


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoPE, Su et al. 2021) for one attention head size.

    The query and key at positions ``m`` and ``n`` are rotated by angles ``m θ_i`` and ``n θ_i``; their
    dot product then depends on ``m - n`` only. Call it on ``q`` and ``k`` after splitting heads.

    Two layouts pair the features differently, with the same frequencies ``θ_i = base^(-2i/hs)``:
    half-split pairs ``(x_i, x_{i+hs/2})`` (GPT-NeoX, Hugging Face LLaMA checkpoints; the default) and
    interleaved pairs ``(x_{2i}, x_{2i+1})`` (the RoFormer paper and Meta's original LLaMA code).

    Args:
        head_dim: size of one head (even).
        max_len: longest sequence to precompute angles for.
        base: frequency base (10000 as in the paper).
        interleaved: pair neighbouring features instead of the two halves.
    """

    def __init__(self, head_dim: int, max_len: int, *, base: float = 10000.0, interleaved: bool = False) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head size, got {head_dim}")
        # 1 / base^(2i/hs), written as Meta's and Hugging Face's code write it (bit-identical angles)
        inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)  # (hs/2,)
        angles = torch.arange(max_len, dtype=torch.float32)[:, None] * inv_freq  # (L, hs/2)
        self.max_len, self.interleaved = max_len, interleaved
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, q: Tensor, k: Tensor, offset: int = 0, positions: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
        """Rotate ``q`` and ``k`` ``(B, nh, T, hs)`` for positions ``offset … offset+T-1``.

        With a KV cache only the new tokens are passed (``offset`` = tokens already cached); the
        cache then stores keys that are already rotated. ``positions`` ``(T,)`` or ``(B, T)`` gives
        each token's position explicitly instead (packed sequences, a cache that does not start at 0)
        and takes precedence over ``offset``.
        """
        T = q.size(-2)
        if positions is None:
            if offset + T > self.max_len:
                raise ValueError(f"positions up to {offset + T - 1} but RoPE tables hold {self.max_len}")
            cos, sin = self.cos[offset : offset + T], self.sin[offset : offset + T]  # (T, hs/2)
        else:
            if positions.shape[-1] != T or positions.dim() not in (1, 2):
                raise ValueError(f"positions must have shape (T,) or (B, T) with T={T}, got {tuple(positions.shape)}")
            if positions.numel() and (int(positions.min()) < 0 or int(positions.max()) >= self.max_len):
                raise ValueError(f"positions must lie in [0, {self.max_len}), got "
                                 f"[{int(positions.min())}, {int(positions.max())}]")
            cos, sin = self.cos[positions], self.sin[positions]  # (T, hs/2) or (B, T, hs/2)
            if positions.dim() == 2:
                cos, sin = cos[:, None], sin[:, None]  # (B, 1, T, hs/2): broadcast over heads
        if self.interleaved:  # rotate (x_2i, x_2i+1) as the half-split pair (x'_i, x'_i+hs/2)
            q, k = _halves(q), _halves(k)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        return (_interleave(q), _interleave(k)) if self.interleaved else (q, k)

    def at(self, positions: Tensor) -> Callable[..., tuple[Tensor, Tensor]]:
        """This RoPE bound to explicit ``positions``; pass it where a ``rope`` argument is taken."""
        return partial(self.forward, positions=positions)


def _halves(x: Tensor) -> Tensor:
    """``(x0, x1, x2, x3, …)`` -> ``(x0, x2, …, x1, x3, …)``: interleaved pairs become half-split pairs."""
    return torch.cat((x[..., 0::2], x[..., 1::2]), dim=-1)


def _interleave(x: Tensor) -> Tensor:
    """Inverse of :func:`_halves`."""
    a, b = x.chunk(2, dim=-1)
    return torch.stack((a, b), dim=-1).flatten(-2)
