"""Training explorers: the learning-rate schedule over two settings, and a seq2seq model learning its task.

Frames are drawn in advance (see :mod:`tfmcourse.widgets.frames`), so the controls also work in the
static book. :func:`grid_explorer` extends the one-control explorer to two controls: an outer ``Stack``
per value of the first control, each holding an inner ``Stack`` per value of the second; every link
runs in the browser.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt

from ..viz.training import lr_curve
from .frames import fig_to_png, frame_explorer

__all__ = ["grid_explorer", "schedule_frames", "schedule_explorer", "progress_frames", "progress_explorer"]


def grid_explorer(frames: Sequence[Sequence[bytes]], row_labels: Sequence[str], col_labels: Sequence[str], *,
                  row_description: str = "row", col_description: str = "column", value: tuple[int, int] = (0, 0),
                  caption: str | None = None) -> widgets.VBox:
    """Two sliders over a grid of precomputed PNG frames; ``frames[i][j]`` is shown for row ``i``, column ``j``.

    Returns:
        a ``VBox``: [caption], the row slider, the column slider, and the outer ``Stack``.
    """
    if len(frames) != len(row_labels) or any(len(r) != len(col_labels) for r in frames) or not frames:
        raise ValueError(f"need a {len(row_labels)} x {len(col_labels)} grid of frames, got "
                         f"{[len(r) for r in frames]}")
    i0, j0 = value
    if not (0 <= i0 < len(row_labels) and 0 <= j0 < len(col_labels)):
        raise ValueError(f"value={value} is outside the {len(row_labels)} x {len(col_labels)} grid")
    style, layout = {"description_width": "initial"}, widgets.Layout(width="420px")
    rows = widgets.SelectionSlider(options=list(row_labels), value=row_labels[i0], description=row_description,
                                   style=style, layout=layout)
    cols = widgets.SelectionSlider(options=list(col_labels), value=col_labels[j0], description=col_description,
                                   style=style, layout=layout)
    inner = [widgets.Stack([widgets.Image(value=png, format="png") for png in row], selected_index=j0)
             for row in frames]
    outer = widgets.Stack(inner, selected_index=i0)
    widgets.jslink((rows, "index"), (outer, "selected_index"))  # all links run in the browser
    for stack in inner:
        widgets.jslink((cols, "index"), (stack, "selected_index"))
    children: list[widgets.Widget] = [rows, cols, outer]
    if caption:
        children.insert(0, widgets.HTML(caption))
    return widgets.VBox(children)


def schedule_frames(total_steps: int, warmups: Sequence[int], floors: Sequence[float], *, max_lr: float = 1e-3,
                    dpi: int = 72) -> list[list[bytes]]:
    """``frames[i][j]``: warmup + cosine with ``warmups[i]`` warmup steps and ``min_lr = floors[j] * max_lr``.

    Each frame draws the schedule over the run (and 10 % past its end, where it stays at ``min_lr``),
    shades the warmup, and prints the first step's learning rate and the mean over the run.
    """
    extra = total_steps // 10
    reference = lr_curve(total_steps, max_lr=max_lr, min_lr=0.0, warmup_steps=0, extra_steps=extra)
    frames = []
    for w in warmups:
        row = []
        for f in floors:
            lrs = lr_curve(total_steps, max_lr=max_lr, min_lr=f * max_lr, warmup_steps=w, extra_steps=extra)
            fig, ax = plt.subplots(figsize=(8.0, 3.3))
            ax.plot(reference, color="0.75", lw=1.2, label="no warmup, min_lr = 0")
            ax.plot(lrs, color="C0", lw=2.0, label="this schedule")
            if w:
                ax.axvspan(0, w, color="C1", alpha=0.15, label=f"warmup ({w} steps)")
            ax.axvline(total_steps, color="k", lw=0.8, ls=":", label=f"total_steps = {total_steps}")
            mean = sum(lrs[:total_steps]) / total_steps
            ax.set_title(f"warmup {w} steps, min_lr = {f:g} × max_lr\n"
                         f"first step {lrs[0]:.2e}, mean over the run {mean:.2e}")
            ax.set_xlabel("optimizer step")
            ax.set_ylabel("learning rate")
            ax.set_ylim(0, max_lr * 1.12)
            ax.grid(True, alpha=0.3)
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
            fig.tight_layout()
            row.append(fig_to_png(fig, dpi=dpi, tight=False))  # equal sizes: the page does not jump
        frames.append(row)
    return frames


def schedule_explorer(total_steps: int = 1000, warmups: Sequence[int] = (0, 10, 50, 100, 200),
                      floors: Sequence[float] = (0.0, 0.1, 0.5, 1.0), *, max_lr: float = 1e-3,
                      value: tuple[int, int] = (2, 1)) -> widgets.VBox:
    """Two sliders (warmup steps, floor) over :func:`schedule_frames` (works without a kernel)."""
    frames = schedule_frames(total_steps, warmups, floors, max_lr=max_lr)
    return grid_explorer(frames, [str(w) for w in warmups], [f"{f:g}" for f in floors],
                         row_description="warmup steps", col_description="min_lr / max_lr", value=value)


def _examples_text(examples: Sequence[tuple[str, str, str]]) -> str:
    lines = [f"{'source':<13}{'target':<13}{'model':<13}"]
    for src, tgt, pred in examples:
        lines.append(f"{src:<13}{tgt:<13}{pred[:12]:<13}{'ok' if pred == tgt else 'x'}")
    return "\n".join(lines)


def progress_frames(snapshots: Sequence[Mapping[str, Any]], *, dpi: int = 72) -> list[bytes]:
    """One PNG per :class:`~tfmcourse.viz.seq2seq.Seq2SeqProbe` snapshot: cross-attention and decoded examples."""
    frames = []
    for snap in snapshots:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.2, 3.5), gridspec_kw={"width_ratios": [1, 1.25]})
        attn = snap.get("attn")
        if attn is not None:
            src, tgt = snap["attn_src"], snap["attn_tgt"]
            ax1.imshow(attn.numpy(), cmap="viridis", vmin=0, vmax=1)
            ax1.set_xticks(range(len(src)), list(src))
            ax1.set_yticks(range(len(tgt) + 1), [f"→{c}" for c in tgt] + ["→eos"])
            ax1.set_xlabel("source character (key)")
            ax1.set_ylabel("query predicting …")
            ax1.set_title("last decoder layer: cross-attention\n(mean over heads)")
        else:
            ax1.axis("off")
        ax2.axis("off")
        ax2.text(0.0, 1.0, _examples_text(snap["examples"]), family="monospace", va="top")
        ax2.set_title(f"held-out examples: exact match {snap['exact_match']:.0%}, BLEU {snap['bleu']:.2f}")
        fig.suptitle(f"after {snap['step']} optimizer steps")
        fig.tight_layout()
        frames.append(fig_to_png(fig, dpi=dpi, tight=False))
    return frames


def progress_explorer(snapshots: Sequence[Mapping[str, Any]]) -> widgets.VBox:
    """A slider over training steps showing :func:`progress_frames` (works without a kernel)."""
    frames = progress_frames(snapshots)
    return frame_explorer(frames, [str(s["step"]) for s in snapshots], description="step", value=len(frames) - 1)
