"""Learning-rate schedules: linear warmup, then cosine decay to a floor (GPT-2, nanoGPT, ViT recipes).

Warmup matters for Adam-type optimizers: their second-moment estimates are noisy over the first steps,
so full-size updates there can push a Transformer into a bad region it never leaves. Cosine decay then
lowers the step size smoothly so the run settles into a minimum instead of bouncing around it.

The schedule is a pure function of the step, so a resumed run needs only the step count to continue
exactly where it stopped (no scheduler object to checkpoint).
"""
from __future__ import annotations

import math

import torch

__all__ = ["warmup_cosine_lr", "set_lr"]


def warmup_cosine_lr(step: int, *, max_lr: float, min_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Learning rate for optimizer step ``step`` (0-based).

    * ``step < warmup_steps``: linear warmup ``max_lr * (step + 1) / (warmup_steps + 1)``, which starts
      near (not at) zero, so the first update already moves the weights, and reaches ``max_lr`` at
      ``step == warmup_steps``;
    * ``warmup_steps <= step < total_steps``: half a cosine from ``max_lr`` down to ``min_lr``;
    * ``step >= total_steps``: constant ``min_lr``.

    Args:
        step: number of optimizer updates done so far.
        max_lr: peak learning rate, reached at the end of warmup.
        min_lr: floor of the cosine, held after ``total_steps``.
        warmup_steps: length of the linear warmup (``0`` = start at ``max_lr``).
        total_steps: step at which the cosine reaches ``min_lr``.
    """
    if step < 0 or warmup_steps < 0 or total_steps < 0:
        raise ValueError(f"step, warmup_steps and total_steps must be >= 0, got {step}, {warmup_steps}, "
                         f"{total_steps}")
    if not 0 <= min_lr <= max_lr:
        raise ValueError(f"need 0 <= min_lr <= max_lr, got min_lr={min_lr}, max_lr={max_lr}")
    # BEGIN SOLUTION ch06
    if step < warmup_steps:
        return max_lr * (step + 1) / (warmup_steps + 1)
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)  # in [0, 1)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)
    # END SOLUTION


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set the learning rate of every parameter group (weight-decay groups share one schedule)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
