"""Plots of positional encodings: sinusoidal tables, learned tables, one-hot positions and RoPE.

Chapter 1 of the book uses these to show why positions are dense vectors (nearby positions look
alike, the width does not grow with the context) and how RoPE turns absolute rotations into a
score that depends only on the relative position.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from torch import Tensor

from ..embedding import RotaryEmbedding, apply_rotary

__all__ = [
    "one_hot_positions",
    "position_similarity",
    "plot_position_table",
    "plot_position_curves",
    "plot_position_similarity",
    "rotary_score_matrix",
    "plot_rotary_pairs",
]


def one_hot_positions(n_positions: int) -> Tensor:
    """One-hot position vectors: row ``p`` is ``e_p``. Shape ``(n_positions, n_positions)``.

    Their width *is* the number of positions, which is why no Transformer uses them as encodings.
    """
    return torch.eye(n_positions)


def position_similarity(table: Tensor) -> Tensor:
    """Cosine similarity between every pair of rows of a position table ``(P, d)`` -> ``(P, P)``."""
    t = table.detach().float()
    t = t / t.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return t @ t.T


def plot_position_table(table: Tensor, *, ax=None, title: str = "positional encoding", cmap: str = "RdBu_r"):
    """Heatmap of a position table ``(P, d)``: one row per position, one column per dimension.

    Returns the figure.
    """
    t = table.detach().float().cpu()
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.6))
    lim = float(t.abs().max()) or 1.0
    im = ax.imshow(t.numpy(), aspect="auto", cmap=cmap, vmin=-lim, vmax=lim, interpolation="nearest")
    ax.set_xlabel("dimension $j$")
    ax.set_ylabel("position $p$")
    ax.set_title(title)
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    return ax.figure


def plot_position_curves(table: Tensor, dims: Sequence[int], *, ax=None, title: str | None = None):
    """Columns ``dims`` of a position table as curves over the position. Returns the figure."""
    t = table.detach().float().cpu()
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.0))
    for j in dims:
        ax.plot(t[:, j].numpy(), label=f"dim {j}", lw=1.4)
    ax.set_xlabel("position $p$")
    ax.set_ylabel("value")
    ax.set_xlim(0, t.size(0) - 1)
    ax.legend(ncol=min(len(dims), 4), loc="lower left")
    if title:
        ax.set_title(title)
    return ax.figure


def plot_position_similarity(tables: Mapping[str, Tensor], *, cell: float = 2.9):
    """One heatmap per table of the cosine similarity between positions (see :func:`position_similarity`).

    Returns the figure.
    """
    fig, axes = plt.subplots(1, len(tables), figsize=(cell * len(tables) + 0.6, cell + 0.5), squeeze=False,
                             layout="constrained")
    for ax, (name, table) in zip(axes[0], tables.items()):
        im = ax.imshow(position_similarity(table).cpu().numpy(), cmap="RdBu_r", vmin=-1, vmax=1,
                       interpolation="nearest")
        ax.set_title(f"{name}\n(width {table.size(1)})")
        ax.set_xlabel("position")
        ax.set_ylabel("position")
    fig.colorbar(im, ax=axes[0].tolist(), fraction=0.02, pad=0.02, label="cosine similarity")
    return fig


def rotary_score_matrix(q: Tensor, k: Tensor, n_positions: int, *, base: float = 10000.0) -> Tensor:
    """Scores ``rot(q, m) · rot(k, n)`` for the same ``q`` and ``k`` placed at every pair of positions.

    Args:
        q, k: one query and one key, ``(hs,)`` with ``hs`` even.
        n_positions: positions ``0 … n_positions-1``.

    Returns:
        ``(n_positions, n_positions)``; entry ``[m, n]`` depends only on ``m - n`` (a Toeplitz matrix).
    """
    hs = q.numel()
    rope = RotaryEmbedding(hs, n_positions, base=base)
    x = torch.stack([q, k]).view(2, 1, 1, hs).expand(2, 1, n_positions, hs)  # (2, 1, P, hs)
    rq, rk = apply_rotary(x, rope.cos, rope.sin)[:, 0]  # (P, hs) each: q and k rotated to every position
    return rq @ rk.T


def plot_rotary_pairs(x: Tensor, n_positions: int, *, base: float = 10000.0, cell: float = 2.2):
    """Where RoPE moves each pair ``(x_i, x_{i+hs/2})`` of one vector ``x`` ``(hs,)`` as the position grows.

    One panel per pair: the dots are the pair at positions ``0 … n_positions-1`` (dark = early). Each
    pair turns on a circle at its own speed ``θ_i = base^(-2i/hs)`` radians per position.
    Returns the figure.
    """
    hs = x.numel()
    rope = RotaryEmbedding(hs, n_positions, base=base)
    rot = apply_rotary(x.view(1, 1, 1, hs).expand(1, 1, n_positions, hs), rope.cos, rope.sin)[0, 0]  # (P, hs)
    half = hs // 2
    fig, axes = plt.subplots(1, half, figsize=(cell * half, cell + 0.4), squeeze=False)
    theta = base ** (-torch.arange(0, hs, 2, dtype=torch.float32) / hs)
    for i, ax in enumerate(axes[0]):
        a, b = rot[:, i].numpy(), rot[:, i + half].numpy()
        r = float(torch.hypot(x[i], x[i + half]))
        circle = torch.linspace(0, 2 * torch.pi, 100)
        ax.plot(r * circle.cos(), r * circle.sin(), color="0.85", lw=1)
        ax.plot([0, a[0]], [0, b[0]], color="k", lw=1)
        ax.scatter(a, b, c=range(n_positions), cmap="viridis", s=14, zorder=3)
        ax.set_aspect("equal")
        lim = 1.15 * r
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"pair {i}: θ = {theta[i]:.3g}")
    fig.tight_layout()
    return fig
