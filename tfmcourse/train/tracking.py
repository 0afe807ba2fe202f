"""The run's record: one JSON object per line (``metrics.jsonl``) and a PNG of the curves.

JSON Lines survives a crash (every line is complete on its own), appends cheaply, and loads with
``pandas.read_json(path, lines=True)`` or three lines of plain Python.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

__all__ = ["MetricsLog", "read_metrics", "plot_metrics"]


class MetricsLog:
    """Append-only JSONL log of training records (``{"step": ..., "split": "train" | "val", ...}``).

    Args:
        path: the ``.jsonl`` file.
        resume_step: when resuming from a checkpoint at this step, records logged after it by the
            interrupted run are dropped, so the log matches the run that continues.
    """

    def __init__(self, path: str | os.PathLike, *, resume_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            keep = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in keep))
            os.replace(tmp, self.path)

    def log(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a metrics log (a torn last line, from a crash mid-write, is skipped)."""
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def plot_metrics(records: list[dict[str, Any]], path: str | os.PathLike, *, title: str = "") -> Path:
    """Plot train/val loss, the learning rate and any validation scores against the step, to a PNG.

    Uses matplotlib's object API with the Agg canvas: no window, no global backend switch (safe inside
    a notebook or on a headless server).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..viz.style import figure_png

    train = [r for r in records if r.get("split") == "train" and math.isfinite(r.get("loss", math.nan))]
    val = [r for r in records if r.get("split") == "val" and "loss" in r]
    scores = sorted({k for r in val for k, v in r.items() if isinstance(v, (int, float))} - {"step", "loss"})
    fig = Figure(figsize=(13 if scores else 10, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3 if scores else 2, width_ratios=[2, 1, 1] if scores else [2, 1])
    ax, ax_lr = axes[0], axes[1]
    if train:
        ax.plot([r["step"] for r in train], [r["loss"] for r in train], lw=1, alpha=0.8, label="train")
    if val:
        ax.plot([r["step"] for r in val], [r["loss"] for r in val], "o-", ms=3, label="val")
    ax.set(xlabel="step", ylabel="loss (cross-entropy, nats)", title=title or "loss")
    if train or val:
        ax.legend()
    ax.grid(alpha=0.3)
    lrs = [r for r in train if "lr" in r]
    ax_lr.plot([r["step"] for r in lrs], [r["lr"] for r in lrs], color="tab:green")
    ax_lr.set(xlabel="step", ylabel="learning rate", title="schedule")
    ax_lr.grid(alpha=0.3)
    if scores:  # task metrics measured at evaluation: accuracy, exact match, BLEU
        for k in scores:
            pts = [r for r in val if k in r]
            axes[2].plot([r["step"] for r in pts], [r[k] for r in pts], "o-", ms=3, label=k)
        axes[2].set(xlabel="step", title="validation scores")
        axes[2].legend()
        axes[2].grid(alpha=0.3)
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    tmp.write_bytes(figure_png(fig, dpi=110, tight=False))  # records its smallest font (viz.style)
    os.replace(tmp, path)
    return path
