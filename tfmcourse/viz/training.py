"""Measurements and plots for chapter 6 (training loops) and the capstone.

Everything here is small enough to run on a CPU in seconds: learning-rate curves, the Adam-vs-AdamW
decay experiment and loss curves from :class:`~tfmcourse.train.Trainer` records. The seq2seq helpers
(decoding, the training probe, the GRU baseline) are in :mod:`tfmcourse.viz.seq2seq`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn

from ..train.schedule import warmup_cosine_lr

__all__ = ["lr_curve", "plot_lr_curves", "decay_experiment", "plot_decay_experiment", "records",
           "plot_history", "smooth"]


# ------------------------------------------------------------------------------------------ schedules
def lr_curve(total_steps: int, *, max_lr: float, min_lr: float, warmup_steps: int,
             extra_steps: int = 0) -> list[float]:
    """``warmup_cosine_lr`` at every step ``0 .. total_steps + extra_steps - 1``."""
    return [warmup_cosine_lr(s, max_lr=max_lr, min_lr=min_lr, warmup_steps=warmup_steps, total_steps=total_steps)
            for s in range(total_steps + extra_steps)]


def plot_lr_curves(curves: Mapping[str, Sequence[float]], *, ax=None, title: str | None = None,
                   warmup_marks: Mapping[str, int] | None = None):
    """One line per schedule (learning rate against optimizer step). Returns the figure."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.2))
    for name, lrs in curves.items():
        line, = ax.plot(range(len(lrs)), lrs, lw=1.6, label=name)
        if warmup_marks and name in warmup_marks and warmup_marks[name] > 0:
            w = warmup_marks[name]
            ax.axvline(w, color=line.get_color(), lw=0.8, ls=":")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    if title:
        ax.set_title(title)
    return ax.figure


# ------------------------------------------------------------------------------------------ Adam vs AdamW
def decay_experiment(grad_stds: Sequence[float], *, steps: int = 500, lr: float = 1e-2, weight_decay: float = 0.1,
                     n: int = 1000, seed: int = 0) -> dict[str, Tensor]:
    """How much weight decay shrinks weights under ``Adam(weight_decay=...)`` (L2) and ``AdamW``.

    Each group of ``n`` weights starts at 1 and receives pure noise as its loss gradient (mean zero, standard
    deviation ``grad_stds[i]``), so any systematic shrinking of the mean comes from the decay alone. Both
    optimizers see identical noise.

    Returns:
        ``{"Adam + L2": (steps + 1, G), "AdamW": (steps + 1, G)}``: the mean weight of each group after
        every step (row 0 is the start).
    """
    stds = torch.tensor(grad_stds, dtype=torch.float32)[:, None]  # (G, 1)
    out = {}
    for name, cls in (("Adam + L2", torch.optim.Adam), ("AdamW", torch.optim.AdamW)):
        gen = torch.Generator().manual_seed(seed)
        w = nn.Parameter(torch.ones(len(grad_stds), n))  # (G, n)
        opt = cls([w], lr=lr, weight_decay=weight_decay, betas=(0.9, 0.999))
        traj = [w.detach().mean(1).clone()]
        for _ in range(steps):
            w.grad = torch.randn(w.shape, generator=gen) * stds  # the "loss" gradient: noise only
            opt.step()
            traj.append(w.detach().mean(1).clone())
        out[name] = torch.stack(traj)
    return out


def plot_decay_experiment(result: Mapping[str, Tensor], grad_stds: Sequence[float], *, lr: float,
                          weight_decay: float):
    """Mean weight against step, one panel per optimizer, one line per gradient scale. Returns the figure."""
    fig, axes = plt.subplots(1, len(result), figsize=(4.8 * len(result), 3.4), sharey=True)
    for ax, (name, traj) in zip(axes, result.items()):
        steps = torch.arange(traj.size(0))
        for j, s in enumerate(grad_stds):
            ax.plot(steps, traj[:, j], lw=1.6, label=f"gradient std {s:g}")
        ax.plot(steps, (1 - lr * weight_decay) ** steps.double(), "k:", lw=1.2, label=r"$(1 - \eta\lambda)^t$")
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.grid(True, alpha=0.3)
        ax.set_ylim(-0.05, 1.05)
    axes[0].set_ylabel("mean weight (started at 1)")
    axes[-1].legend(loc="lower left")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ curves
def records(history: Sequence[Mapping[str, Any]], key: str = "loss", split: str = "train") -> tuple[list, list]:
    """``(steps, values)`` of ``key`` in the records of ``split`` of a :class:`Trainer` history."""
    rows = [r for r in history if r.get("split") == split and key in r]
    return [r["step"] for r in rows], [r[key] for r in rows]


def smooth(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average over ``window`` values (shorter at the start)."""
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def plot_history(runs: Mapping[str, Sequence[Mapping[str, Any]]], *, key: str = "loss", split: str = "train",
                 ax=None, logy: bool = False, window: int = 1, hlines: Mapping[str, float] | None = None,
                 val: bool = False, title: str | None = None, ylabel: str | None = None, legend_loc: str = "best"):
    """Plot ``key`` against step for each named Trainer history (optionally smoothed, with validation points).

    Args:
        runs: ``{label: trainer.history}``.
        window: moving-average window for the training curve (1 = raw).
        hlines: horizontal reference lines ``{label: value}`` (e.g. a baseline loss).
        val: also draw the ``split="val"`` values of ``key`` as markers.
        legend_loc: matplotlib legend location.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.4))
    for name, hist in runs.items():
        steps, vals = records(hist, key, split)
        line, = ax.plot(steps, smooth(vals, window) if window > 1 else vals, lw=1.5, label=name)
        if val:
            vs, vv = records(hist, key, "val")
            if vs:
                ax.plot(vs, vv, "o", ms=4, color=line.get_color(), label=f"{name} (validation)")
    for i, (name, y) in enumerate((hlines or {}).items()):
        ax.axhline(y, color=f"C{len(runs) + i}", ls="--", lw=1.1, label=name)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(ylabel or key.replace("_", " "))
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc=legend_loc)
    if title:
        ax.set_title(title)
    return ax.figure
