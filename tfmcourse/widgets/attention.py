"""Attention explorers: the effect of the 1/sqrt(d_k) scale, and of causal and padding masks.

Every frame is drawn in advance with :func:`tfmcourse.viz.attention.plot_attention` (see
:mod:`tfmcourse.widgets.frames`), so the controls also work in the static book.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from ..attention import causal_mask, combine_masks, padding_mask, scaled_dot_product_attention
from ..viz.attention import plot_attention
from ..viz.qkv import attention_entropy
from .frames import fig_to_png, frame_explorer

__all__ = ["scaling_frames", "scaling_explorer", "MASK_KINDS", "mask_weights", "mask_frames", "mask_explorer"]

MASK_KINDS = ("no mask", "causal", "padding", "causal + padding")


def scaling_frames(dims: Sequence[int], *, T: int = 8, seed: int = 0, dpi: int = 72) -> list[bytes]:
    """One PNG per ``d_k``: the ``(T, T)`` weights of random queries/keys, unscaled next to scaled."""
    frames = []
    for d_k in dims:
        gen = torch.Generator().manual_seed(seed)
        q = torch.randn(T, d_k, generator=gen)  # (T, d_k)
        k = torch.randn(T, d_k, generator=gen)  # (T, d_k)
        v = torch.zeros(T, 1)
        _, raw = scaled_dot_product_attention(q, k, v, scale=1.0, return_weights=True)  # (T, T)
        _, scaled = scaled_dot_product_attention(q, k, v, return_weights=True)
        titles = [f"softmax(q·k)\nmean entropy {attention_entropy(raw).mean():.2f} nats",
                  f"softmax(q·k / √d_k)\nmean entropy {attention_entropy(scaled).mean():.2f} nats"]
        fig = plot_attention(torch.stack([raw, scaled]), titles=titles, ncols=2, cell=3.0)
        fig.suptitle(f"d_k = {d_k}   (uniform attention has entropy ln {T} = {torch.log(torch.tensor(T)):.2f})")
        fig.set_figheight(fig.get_figheight() + 0.35)  # room for the title line
        fig.tight_layout()
        frames.append(fig_to_png(fig, dpi=dpi))
    return frames


def scaling_explorer(dims: Sequence[int] = (1, 4, 16, 64, 256, 1024), *, T: int = 8, seed: int = 0):
    """A slider over ``d_k`` showing :func:`scaling_frames` (works without a kernel)."""
    frames = scaling_frames(dims, T=T, seed=seed)
    return frame_explorer(frames, [str(d) for d in dims], description="d_k", value=min(3, len(dims) - 1))


def mask_weights(kind: str, q: torch.Tensor, k: torch.Tensor, lengths: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """The boolean mask of ``kind`` (one of :data:`MASK_KINDS`) and the attention weights it gives.

    Args:
        q, k: ``(B, 1, T, d_k)`` queries and keys (one head).
        lengths: ``(B,)`` real lengths; later positions are padding.

    Returns:
        ``(mask, weights)``, both ``(B, T, T)`` (the mask broadcast to every query).
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"kind must be one of {MASK_KINDS}, got {kind!r}")
    B, _, T, _ = q.shape
    causal = causal_mask(T) if "causal" in kind else None  # (T, T)
    pad = padding_mask(lengths, T) if "padding" in kind else None  # (B, 1, 1, T)
    mask = combine_masks(causal, pad)
    _, w = scaled_dot_product_attention(q, k, torch.zeros_like(k), mask, return_weights=True)  # (B, 1, T, T)
    full = torch.ones(B, 1, T, T, dtype=torch.bool) if mask is None else mask.expand(B, 1, T, T)
    return full[:, 0], w[:, 0]


def mask_frames(tokens: Sequence[Sequence[str]], *, d_k: int = 16, seed: int = 0, cell: float = 3.6,
                dpi: int = 96) -> list[bytes]:
    """One PNG per mask kind of :data:`MASK_KINDS`: mask and weights of each sequence in a padded batch.

    ``tokens`` is a batch of token lists of equal length, padding written as ``"<pad>"``. One row per
    sequence: its mask, then its weights with every visible weight printed in its cell (at the book's
    text size, so ``cell`` inches per panel must leave room for them).
    """
    B, T = len(tokens), len(tokens[0])
    lengths = torch.tensor([sum(t != "<pad>" for t in seq) for seq in tokens])
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, 1, T, d_k, generator=gen)
    k = torch.randn(B, 1, T, d_k, generator=gen)
    frames = []
    for kind in MASK_KINDS:
        mask, w = mask_weights(kind, q, k, lengths)
        panels, titles, labels = [], [], []
        for b in range(B):
            panels += [mask[b].float(), w[b]]
            titles += [f"sequence {b}: mask", f"sequence {b}: weights"]
        fig = plot_attention(torch.stack(panels), titles=titles, ncols=2, cell=cell, x_labels=None, y_labels=None)
        for i, ax in enumerate(fig.axes[: 2 * B]):
            seq = tokens[i // 2]
            ax.set_xticks(range(T), seq, rotation=90)
            ax.set_yticks(range(T), seq)
            for r in range(T):
                for c in range(T):
                    if i % 2 and w[i // 2, r, c] > 0.005:
                        ax.text(c, r, f"{w[i // 2, r, c]:.2f}".lstrip("0"), ha="center", va="center",
                                color="w" if w[i // 2, r, c] < 0.6 else "k")
        fig.suptitle(f"{kind}   (mask: yellow = may attend)")
        fig.set_figheight(fig.get_figheight() + 0.35)
        fig.tight_layout()
        frames.append(fig_to_png(fig, dpi=dpi))
    return frames


def mask_explorer(tokens: Sequence[Sequence[str]] | None = None, *, d_k: int = 16, seed: int = 0):
    """A dropdown over :data:`MASK_KINDS` showing :func:`mask_frames` (works without a kernel)."""
    if tokens is None:
        tokens = [["the", "cat", "sat", "on", "the", "mat"], ["a", "dog", "ran", "<pad>", "<pad>", "<pad>"]]
    frames = mask_frames(tokens, d_k=d_k, seed=seed)
    return frame_explorer(frames, list(MASK_KINDS), description="mask", control="dropdown")
