"""Scaled dot-product attention, written out and fused, plus the mask builders.

Convention used everywhere in tfmcourse: a boolean mask is ``True`` where a query **may attend** to
a key (the sense of ``F.scaled_dot_product_attention``). Masks broadcast against the score tensor
``(B, nh, T, S)``: a causal mask is ``(T, S)``, a key-padding mask becomes ``(B, 1, 1, S)``.

A query whose keys are all masked out has nothing to attend to. Both paths here return zeros for
such a row (never NaN), which is what padding queries in a batch need.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "scaled_dot_product_attention",
    "attention",
    "causal_mask",
    "padding_mask",
    "combine_masks",
]


def causal_mask(T: int, S: int | None = None, *, device: torch.device | str | None = None) -> Tensor:
    """Lower-triangular mask: query ``i`` may attend to keys ``j <= i + (S - T)``.

    With ``S > T`` (queries are the last ``T`` of ``S`` positions, as with a KV cache) the diagonal is
    shifted so that each query still sees every key up to and including its own position.

    Args:
        T: number of queries.
        S: number of keys (defaults to ``T``).
        device: where to build the mask.

    Shapes:
        returns ``(T, S)`` bool.
    """
    # BEGIN SOLUTION ch03
    S = T if S is None else S
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)
    # END SOLUTION


def padding_mask(lengths: Tensor, S: int | None = None) -> Tensor:
    """Key-padding mask from sequence lengths: key ``j`` of sequence ``b`` is real iff ``j < lengths[b]``.

    Args:
        lengths: ``(B,)`` integer lengths.
        S: padded length (defaults to ``lengths.max()``).

    Shapes:
        returns ``(B, 1, 1, S)`` bool, ready to broadcast over heads and queries.
    """
    # BEGIN SOLUTION ch03
    S = int(lengths.max()) if S is None else S
    keep = torch.arange(S, device=lengths.device)[None, :] < lengths[:, None]  # (B, S)
    return keep[:, None, None, :]
    # END SOLUTION


def combine_masks(*masks: Tensor | None) -> Tensor | None:
    """Logical AND of the given masks (``None`` entries are ignored); ``None`` if all are ``None``."""
    out = None
    for m in masks:
        if m is None:
            continue
        out = m if out is None else (out & m)
    return out


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    *,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    scale: float | None = None,
    return_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Attention written out: ``softmax(q k^T / sqrt(d_k) + mask) v``.

    Args:
        q: queries ``(..., T, d_k)``.
        k: keys ``(..., S, d_k)``.
        v: values ``(..., S, d_v)``.
        mask: boolean, True = may attend; broadcastable to ``(..., T, S)``.
        is_causal: also apply :func:`causal_mask`.
        dropout_p: dropout on the attention weights (use only in training).
        scale: score scale; defaults to ``1 / sqrt(d_k)``.
        return_weights: also return the attention weights ``(..., T, S)``.

    Shapes:
        returns ``(..., T, d_v)`` (and the weights when asked).
    """
    # BEGIN SOLUTION ch03
    T, S, d_k = q.size(-2), k.size(-2), q.size(-1)
    scale = 1.0 / math.sqrt(d_k) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., T, S)
    if is_causal:
        mask = combine_masks(mask, causal_mask(T, S, device=q.device))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    # Softmax in at least float32 for stability under fp16/bf16; softmax subtracts the row max itself.
    weights = torch.softmax(scores, dim=-1, dtype=torch.promote_types(scores.dtype, torch.float32))
    if mask is not None:
        # A row with every key masked is all -inf and softmaxes to NaN: make it attend to nothing.
        weights = weights.nan_to_num(0.0)
    weights = weights.to(q.dtype)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = weights @ v  # (..., T, d_v)
    return (out, weights) if return_weights else out
    # END SOLUTION


def attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    *,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    fused: bool = True,
) -> Tensor:
    """Dispatch to PyTorch's fused kernel (flash / memory-efficient / math) or the manual path.

    Both paths compute the same thing; the fused one never materialises the ``(T, S)`` weights.
    Rows whose keys are all masked come back as zeros on both paths.
    """
    if not fused:
        return scaled_dot_product_attention(q, k, v, mask, is_causal=is_causal, dropout_p=dropout_p)
    if is_causal and (mask is not None or q.size(-2) != k.size(-2)):
        # SDPA takes is_causal or a mask, not both, and aligns its causal diagonal top-left; we want
        # bottom-right (cache semantics), so build the mask ourselves in those cases.
        mask, is_causal = combine_masks(mask, causal_mask(q.size(-2), k.size(-2), device=q.device)), False
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal)
    if mask is not None:
        # Zero rows that had no key to attend to (some kernels return NaN or a mean there).
        has_key = mask.any(dim=-1, keepdim=True)
        out = out.masked_fill(~has_key, 0.0)
    return out
