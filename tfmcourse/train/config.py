"""What the :class:`~tfmcourse.train.Trainer` is asked to do: steps, batch, optimizer and precision settings."""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["TrainConfig", "resolve_amp_dtype"]


@dataclass(frozen=True)
class TrainConfig:
    """How to train (the *what* is the model and the data given to :class:`Trainer`).

    ``batch_size`` is per process and per micro-step: one optimizer step sees
    ``batch_size * grad_accum * world_size`` items. ``min_lr=None`` means ``lr / 10``; ``amp=None``
    means mixed precision on CUDA and float32 elsewhere; ``ckpt_every=None`` checkpoints at every
    evaluation. With ``out_dir=None`` nothing is written to disk.
    """

    steps: int = 1000
    batch_size: int = 32
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr: float | None = None
    warmup_steps: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = 1.0
    amp: bool | None = None
    compile: bool = False
    eval_every: int = 100
    log_every: int = 10
    ckpt_every: int | None = None
    seed: int = 0
    deterministic: bool = False
    out_dir: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum", "eval_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or (self.min_lr is not None and not 0 <= self.min_lr <= self.lr):
            raise ValueError(f"need lr > 0 and 0 <= min_lr <= lr, got lr={self.lr}, min_lr={self.min_lr}")
        if self.warmup_steps < 0 or (self.grad_clip is not None and self.grad_clip <= 0):
            raise ValueError("warmup_steps must be >= 0 and grad_clip > 0 (or None to disable clipping)")

    @property
    def final_lr(self) -> float:
        return self.lr / 10 if self.min_lr is None else self.min_lr


def resolve_amp_dtype(device: torch.device, amp: bool | None) -> torch.dtype | None:
    """Autocast dtype: bf16 on CUDA when supported, else fp16 (with loss scaling); ``None`` = float32.

    Mixed precision is CUDA-only here: CPU autocast is slow for training and MPS support varies.
    """
    if device.type != "cuda" or amp is False:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
