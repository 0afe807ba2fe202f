"""Pictures of multi-head attention: how ``(B, T, C)`` splits into heads, and where each head looks."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle
from torch import Tensor

__all__ = ["plot_head_split", "offset_profile", "plot_offset_profile"]

_HEAD_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


def _cell(ax, x: float, y: float, colour: str, text: str, alpha: float) -> None:
    ax.add_patch(Rectangle((x, y), 1, 1, facecolor=colour, alpha=alpha, edgecolor="white", lw=1.5))
    ax.text(x + 0.5, y + 0.5, text, ha="center", va="center")


def plot_head_split(T: int = 3, d_model: int = 8, n_heads: int = 2, *, cell: float = 0.42):
    """Draw ``q.view(B, T, nh, hs).transpose(1, 2)`` for one sequence: ``(T, C)`` -> ``(nh, T, hs)``.

    Cells are labelled with their channel ``c``; rows are tokens (shaded by token), colours are heads.
    The ``(T, C)`` matrix and its ``view`` are stacked on the left, the transposed ``(nh, T, hs)`` on
    the right, all with cells ``cell`` inches wide (so the figure stays narrow enough for the book's
    column with its text at the book's sizes). Returns the figure.
    """
    if d_model % n_heads:
        raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
    hs = d_model // n_heads
    colours = [_HEAD_COLOURS[h % len(_HEAD_COLOURS)] for h in range(n_heads)]
    alphas = [0.95 - 0.5 * t / max(T - 1, 1) for t in range(T)]
    gap = 1.2
    w_mid = d_model + gap * (n_heads - 1)
    rows = n_heads * T + (n_heads - 1) * gap
    # Panel extents in cell units (x from -1.2 leaves room for the t0, t1, ... row labels).
    left_x, top_y, mid_y = (-1.2, w_mid), (-0.2, T + 0.9), (-0.2, T + 0.2)  # top: room for "head h"
    right_x, right_y = (-1.2, hs + 2.4), (-0.2, rows + 0.4)
    title_in, margin_in, col_gap_in = 0.5, 0.1, 0.45  # room for titles (two lines on the right)
    left_w = cell * (left_x[1] - left_x[0])
    top_h, mid_h = cell * (top_y[1] - top_y[0]), cell * (mid_y[1] - mid_y[0])
    right_w, right_h = cell * (right_x[1] - right_x[0]), cell * (right_y[1] - right_y[0])
    fig_w = 2 * margin_in + left_w + col_gap_in + right_w
    fig_h = 2 * margin_in + max(top_h + mid_h + 2 * title_in, right_h + 1.5 * title_in)

    def panel(x0: float, top: float, w: float, h: float, xlim, ylim):  # inches from the left / top
        ax = fig.add_axes((x0 / fig_w, 1 - (top + h) / fig_h, w / fig_w, h / fig_h))
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_aspect("equal")
        ax.axis("off")
        return ax

    fig = plt.figure(figsize=(fig_w, fig_h))
    ax0 = panel(margin_in, margin_in + title_in, left_w, top_h, left_x, top_y)
    ax1 = panel(margin_in, margin_in + 2 * title_in + top_h, left_w, mid_h, left_x, mid_y)
    ax2 = panel(margin_in + left_w + col_gap_in, margin_in + 1.5 * title_in, right_w, right_h, right_x, right_y)
    # 1. (T, C): one row per token, the heads' channels side by side
    for t in range(T):
        for c in range(d_model):
            _cell(ax0, c, T - 1 - t, colours[c // hs], str(c), alphas[t])
        ax0.text(-0.3, T - 1 - t + 0.5, f"t{t}", ha="right", va="center")
    for h in range(n_heads):
        ax0.text(h * hs + hs / 2, T + 0.15, f"head {h}", ha="center", va="bottom", color=colours[h])
    ax0.set_title(f"q = x W_Q:  (T, C) = ({T}, {d_model})", pad=16)
    # 2. view (T, nh, hs): the same memory, the C axis cut into nh groups of hs
    for t in range(T):
        for h in range(n_heads):
            for j in range(hs):
                _cell(ax1, h * (hs + gap) + j, T - 1 - t, colours[h], str(h * hs + j), alphas[t])
        ax1.text(-0.3, T - 1 - t + 0.5, f"t{t}", ha="right", va="center")
    ax1.set_title(f".view(B, T, nh, hs):  (T, nh, hs) = ({T}, {n_heads}, {hs})", pad=6)
    # 3. transpose -> (nh, T, hs): each head owns a little (T, hs) matrix
    for h in range(n_heads):
        top = rows - h * (T + gap)
        for t in range(T):
            for j in range(hs):
                _cell(ax2, j, top - 1 - t, colours[h], str(h * hs + j), alphas[t])
            ax2.text(-0.3, top - 1 - t + 0.5, f"t{t}", ha="right", va="center")
        ax2.text(hs + 0.3, top - T / 2, f"head {h}", ha="left", va="center", color=colours[h])
    ax2.set_title(f".transpose(1, 2):\n(nh, T, hs) = ({n_heads}, {T}, {hs})", pad=6)
    return fig


def offset_profile(weights: Tensor, max_offset: int | None = None) -> Tensor:
    """Average causal attention weight by how far back the key is: ``offset = query - key``.

    Args:
        weights: ``(nh, T, T)`` or ``(B, nh, T, T)`` attention weights (batch is averaged).
        max_offset: keep offsets ``0..max_offset`` (default ``T - 1``).

    Returns:
        ``(nh, max_offset + 1)``: entry ``[h, d]`` is the mean over queries ``t >= d`` of head ``h``'s
        weight on key ``t - d``.
    """
    w = weights.detach().float()
    w = w.mean(0) if w.dim() == 4 else w
    nh, T, S = w.shape
    if T != S:
        raise ValueError(f"offset_profile needs self-attention weights (T == S), got {T} x {S}")
    max_offset = T - 1 if max_offset is None else min(max_offset, T - 1)
    return torch.stack([w.diagonal(offset=-d, dim1=-2, dim2=-1).mean(-1) for d in range(max_offset + 1)], dim=-1)


def plot_offset_profile(profile: Tensor, *, titles: Sequence[str] | None = None, cell: float = 2.2):
    """One bar chart per head of :func:`offset_profile`'s output; returns the figure."""
    nh, n = profile.shape
    fig, axes = plt.subplots(1, nh, figsize=(cell * nh, 2.1), sharey=True, squeeze=False)
    for h, ax in enumerate(axes[0]):
        ax.bar(range(n), profile[h].tolist(), color=_HEAD_COLOURS[h % len(_HEAD_COLOURS)])
        ax.set_title(titles[h] if titles else f"head {h}")
        ax.set_xlabel("keys back (t − s)")
        ax.set_xticks(range(0, n, max(1, n // 6)))
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("mean weight")
    fig.tight_layout()
    return fig
