"""The training step and the evaluation loop: what :class:`~tfmcourse.train.Trainer` runs (chapter 6 exercise).

Both work for every model of the course. A *batch* is a tuple of tensors whose last element holds the
targets, and ``model(*batch[:-1])`` returns ``(logits, ...)`` with logits ``(..., n_classes)`` for targets
``(...)``:

=========  ===============================  ======================  ==================
model      batch                            logits                  targets
=========  ===============================  ======================  ==================
GPT        ``(idx, targets)``               ``(B, T, vocab)``       ``(B, T)``
seq2seq    ``(src, tgt_in, targets)``       ``(B, T, vocab)``       ``(B, T)``
ViT        ``(images, labels)``             ``(B, n_classes)``      ``(B,)``
=========  ===============================  ======================  ==================

Targets equal to :data:`IGNORE_INDEX` (``-100``: padding, prompt positions) count nowhere: not in the
loss, not in the number of targets.

**Gradient accumulation weights micro-batches by their number of targets.** One optimizer step over
micro-batches ``1..k`` must equal one step over the big batch they make together, whose loss is the mean
over *all* its counted targets. Micro-batch ``i`` has ``n_i`` counted targets and a loss ``L_i`` that is
the mean over them, so the big batch's loss is ``sum_i L_i * n_i / N`` with ``N = sum_i n_i``: each
micro-batch's loss is scaled by its share of the step's targets before ``backward``. Dividing by the
number of micro-batches ``k`` instead (nanoGPT's rule) is the same when every micro-batch counts the same
number of targets (the language model's fixed windows, image labels) and gives a short sequence's tokens
too much weight when they do not (padded seq2seq batches). Evaluation uses the same rule: the mean over
every counted target, not the mean of per-batch means. (Under DDP each process weights its own
micro-batches; the processes' gradients are then averaged, which is exact when they count the same
number of targets.)
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .schedule import set_lr

__all__ = ["IGNORE_INDEX", "Batch", "train_step", "evaluate"]

IGNORE_INDEX = -100
Batch = tuple[Tensor, ...]


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, micro_batches: Sequence[Batch], *, step: int,
               lr_schedule: Callable[[int], float], grad_clip: float | None = None,
               scaler: torch.amp.GradScaler | None = None, amp_dtype: torch.dtype | None = None) -> dict[str, Any]:
    """One optimizer update from the micro-batches of one step (gradient accumulation, mixed precision).

    In this order:

    1. put the model in training mode (an evaluation may have left it in eval mode);
    2. count the targets that are not ``IGNORE_INDEX`` in each micro-batch (``n_i``) and in all (``N``);
    3. for each micro-batch: forward pass under ``torch.autocast(device_type, dtype=amp_dtype)`` (no autocast
       when ``amp_dtype`` is ``None``); the mean cross-entropy over its counted targets (``ignore_index=-100``,
       computed in float32); times ``n_i / N``; backward through ``scaler.scale(loss)``. ``backward`` *adds*
       into ``.grad``, so the gradients of the micro-batches sum up to those of the big batch;
    4. with ``grad_clip``: ``scaler.unscale_(optimizer)`` first (with fp16 the gradients are still multiplied
       by the loss scale), then clip the global norm with ``torch.nn.utils.clip_grad_norm_``;
    5. set every parameter group's learning rate to ``lr_schedule(step)``;
    6. ``scaler.step(optimizer)`` (it skips the update when a gradient is inf or NaN) and ``scaler.update()``;
    7. zero the gradients (``optimizer.zero_grad(set_to_none=True)``): after the update, not between the
       micro-batches, whose gradients must add up. (Done here, their memory is free before the next forward.)

    Under DDP, ``model`` is the DDP-wrapped model; wrapping the backward of every micro-batch but the last in
    ``model.no_sync()`` all-reduces the gradients once per step instead of once per micro-batch (optional:
    the result is the same).

    Args:
        model: ``model(*batch[:-1])`` returns ``(logits, ...)``.
        optimizer: updates ``model``'s parameters.
        micro_batches: the step's micro-batches (at least one), on the model's device; each a tuple whose last
            tensor holds the targets. Every micro-batch must have at least one counted target.
        step: optimizer updates done so far (``0`` for the first); this update uses ``lr_schedule(step)``.
        lr_schedule: step -> learning rate, e.g. ``functools.partial(warmup_cosine_lr, max_lr=..., ...)``.
        grad_clip: clip the global gradient norm to this value; ``None``: no clipping.
        scaler: a ``torch.amp.GradScaler`` (fp16 needs one); ``None`` means no loss scaling, as does a
            scaler built with ``enabled=False`` (its methods then pass everything through).
        amp_dtype: autocast dtype of the forward passes (``torch.bfloat16``, ``torch.float16``), or ``None``.

    Returns:
        ``{"loss", "n_targets", "grad_norm", "lr"}``: the step's loss (0-d float32 tensor, detached: the
        mean over all ``N`` counted targets, what the big batch would give), ``N`` (int or 0-d tensor), the
        global gradient norm before clipping (0-d tensor; ``None`` without ``grad_clip``) and the learning rate
        used (float).
    """
    # BEGIN SOLUTION ch06
    model.train()
    if scaler is None:
        scaler = torch.amp.GradScaler(enabled=False)  # every call passes through
    counts = [(batch[-1] != IGNORE_INDEX).sum() for batch in micro_batches]  # tensors: no wait for the GPU
    n_targets = torch.stack(counts).sum()
    losses = []
    for i, (batch, n) in enumerate(zip(micro_batches, counts)):
        *inputs, targets = batch
        last = i == len(micro_batches) - 1
        # Under DDP, skip the gradient all-reduce until the last micro-batch's backward.
        sync = nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            with torch.autocast(targets.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(*inputs)[0]
            loss = F.cross_entropy(logits.flatten(0, -2).float(), targets.flatten(), ignore_index=IGNORE_INDEX)
            loss = loss * (n / n_targets)  # this micro-batch's share of the step's targets
            scaler.scale(loss).backward()
        losses.append(loss.detach())
    grad_norm = None
    if grad_clip is not None:
        scaler.unscale_(optimizer)  # clip the true gradients, not the loss-scaled ones
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    lr = lr_schedule(step)
    set_lr(optimizer, lr)
    scaler.step(optimizer)  # skips the update if a gradient overflowed (inf/NaN); then update() lowers the scale
    scaler.update()
    optimizer.zero_grad(set_to_none=True)  # after the update: the micro-batches' gradients had to add up
    return {"loss": torch.stack(losses).sum(), "n_targets": n_targets, "grad_norm": grad_norm, "lr": lr}
    # END SOLUTION


def evaluate(model: nn.Module, batches: Iterable[Batch], *, amp_dtype: torch.dtype | None = None) -> dict[str, Any]:
    """The mean loss over every counted target of ``batches``, in eval mode and without gradients.

    Puts the model in eval mode (dropout off), runs the forward passes under ``torch.no_grad()`` (and under
    autocast when ``amp_dtype`` is given), sums the cross-entropy of every target that is not
    ``IGNORE_INDEX`` and divides by their number: batches weigh by their number of targets, so the result does
    not depend on how the data is cut into batches. Afterwards the model is back in the mode it was in
    (training or eval).

    Args:
        model: ``model(*batch[:-1])`` returns ``(logits, ...)``.
        batches: tuples whose last tensor holds the targets, on the model's device.
        amp_dtype: autocast dtype of the forward passes, or ``None``.

    Returns:
        ``{"loss": float, "n_targets": int}``; the loss is ``nan`` when no target counted.
    """
    # BEGIN SOLUTION ch06
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            *inputs, targets = batch
            with torch.autocast(targets.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(*inputs)[0]
            # the sum over this batch's counted targets: dividing once by their total weighs every target alike
            total += float(F.cross_entropy(logits.flatten(0, -2).float(), targets.flatten(),
                                           ignore_index=IGNORE_INDEX, reduction="sum"))
            count += int((targets != IGNORE_INDEX).sum())
    model.train(was_training)
    return {"loss": total / count if count else float("nan"), "n_targets": count}
    # END SOLUTION
