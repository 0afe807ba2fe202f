"""Filters that decide which tokens a language model may sample next (the capstone's exercise).

Both take logits ``(..., V)`` and return logits of the same shape in which the excluded tokens are
``-inf``, so that a softmax gives them probability 0 and the kept tokens keep their relative odds.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["top_k_filter", "top_p_filter"]


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the ``k`` largest logits of the last axis (ties at the k-th value are kept too).

    Shapes:
        logits: ``(..., V)`` -> ``(..., V)``.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    kth = torch.topk(logits, min(k, logits.size(-1)), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, top_p: float) -> Tensor:
    """Keep the smallest set of most likely tokens whose probabilities sum to at least ``top_p`` (nucleus
    sampling, Holtzman et al. 2020); every other entry becomes ``-inf``.

    Args:
        logits: ``(..., V)`` scores over the vocabulary.
        top_p: the probability mass to keep, in ``(0, 1]``.

    Returns:
        ``(..., V)``: the kept logits unchanged, every other entry ``-inf``.
    """
    # BEGIN SOLUTION ch08
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if top_p == 1.0:  # all the mass: every token (cumulative sums in float32 can reach 1 early)
        return logits.clone()
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # probability of the more likely tokens
    sorted_logits = sorted_logits.masked_fill(mass_before >= top_p, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    # END SOLUTION
