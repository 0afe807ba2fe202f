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
    ax.text(x + 0.5, y + 0.5, text, ha="center", va="center", fontsize=7)


def plot_head_split(T: int = 3, d_model: int = 8, n_heads: int = 2):
    """Draw ``q.view(B, T, nh, hs).transpose(1, 2)`` for one sequence: ``(T, C)`` -> ``(nh, T, hs)``.

    Cells are labelled with their channel ``c``; rows are tokens (shaded by token), colours are heads.
    Returns the figure.
    """
    if d_model % n_heads:
        raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
    hs = d_model // n_heads
    colours = [_HEAD_COLOURS[h % len(_HEAD_COLOURS)] for h in range(n_heads)]
    alphas = [0.95 - 0.5 * t / max(T - 1, 1) for t in range(T)]
    gap = 1.2
    w_left = d_model
    w_mid = d_model + gap * (n_heads - 1)
    w_right = hs
    fig, axes = plt.subplots(1, 3, figsize=(3.0 + 0.55 * (w_left + w_mid + w_right), 1.2 + 0.5 * T * n_heads / 2 + 0.6),
                             gridspec_kw={"width_ratios": [w_left, w_mid, w_right + 1.5]})
    ax0, ax1, ax2 = axes
    # 1. (T, C): one row per token, the heads' channels side by side
    for t in range(T):
        for c in range(d_model):
            _cell(ax0, c, T - 1 - t, colours[c // hs], str(c), alphas[t])
        ax0.text(-0.3, T - 1 - t + 0.5, f"t{t}", ha="right", va="center", fontsize=8)
    for h in range(n_heads):
        ax0.text(h * hs + hs / 2, T + 0.15, f"head {h}", ha="center", va="bottom", fontsize=8, color=colours[h])
    ax0.set_title(f"q = x W_Q   (T, C) = ({T}, {d_model})", fontsize=9, pad=16)
    ax0.set_xlim(-1.2, d_model)
    ax0.set_ylim(-0.2, T + 0.9)
    # 2. view (T, nh, hs): the same memory, the C axis cut into nh groups of hs
    for t in range(T):
        for h in range(n_heads):
            for j in range(hs):
                _cell(ax1, h * (hs + gap) + j, T - 1 - t, colours[h], str(h * hs + j), alphas[t])
        ax1.text(-0.3, T - 1 - t + 0.5, f"t{t}", ha="right", va="center", fontsize=8)
    ax1.set_title(f".view(B, T, nh, hs)   ({T}, {n_heads}, {hs})", fontsize=9, pad=16)
    ax1.set_xlim(-1.2, w_mid)
    ax1.set_ylim(-0.2, T + 0.9)
    # 3. transpose -> (nh, T, hs): each head owns a little (T, hs) matrix
    rows = n_heads * T + (n_heads - 1) * gap
    for h in range(n_heads):
        top = rows - h * (T + gap)
        for t in range(T):
            for j in range(hs):
                _cell(ax2, j, top - 1 - t, colours[h], str(h * hs + j), alphas[t])
            ax2.text(-0.3, top - 1 - t + 0.5, f"t{t}", ha="right", va="center", fontsize=7)
        ax2.text(hs + 0.3, top - T / 2, f"head {h}", ha="left", va="center", fontsize=8, color=colours[h])
    ax2.set_title(f".transpose(1, 2)   ({n_heads}, {T}, {hs})", fontsize=9, pad=16)
    ax2.set_xlim(-1.2, hs + 2.2)
    ax2.set_ylim(-0.2, rows + 0.4)
    for ax in axes:
        ax.set_aspect("equal")
        ax.axis("off")
    fig.tight_layout()
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
        ax.set_title(titles[h] if titles else f"head {h}", fontsize=9)
        ax.set_xlabel("keys back (t − s)", fontsize=8)
        ax.set_xticks(range(0, n, max(1, n // 6)))
        ax.tick_params(labelsize=7)
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("mean weight", fontsize=8)
    fig.tight_layout()
    return fig
