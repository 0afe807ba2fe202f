"""Pictures for the Vision Transformer: patch grids, patch sequences, attention over images, positions."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..vit import patchify

__all__ = ["image_for_display", "draw_overlay", "plot_patch_grid", "plot_patch_sequence", "cls_attention",
           "attention_rollout", "plot_attention_overlay", "position_similarity", "plot_position_similarity"]


def image_for_display(image: Tensor) -> tuple[np.ndarray, str | None]:
    """``(C, H, W)`` or ``(H, W)`` -> an array for ``imshow`` and its colour map (``None`` for RGB)."""
    img = torch.as_tensor(image).detach().float().cpu()
    if img.dim() == 3 and img.size(0) == 1:
        img = img[0]
    if img.dim() == 2:
        return img.numpy(), "gray_r"
    img = img.permute(1, 2, 0)
    lo, hi = img.min(), img.max()
    return ((img - lo) / (hi - lo).clamp_min(1e-8)).numpy(), None


def draw_overlay(ax, image: Tensor, attn: Tensor, *, alpha: float = 0.7, colour: tuple = (1.0, 0.25, 0.0)) -> None:
    """Draw ``image`` on ``ax`` with ``attn`` ``(h, w)`` over it as a transparent colour wash.

    The attention map is upsampled to the image size (each patch one block) and scaled so its largest
    value is fully coloured; where attention is zero the image shows through unchanged.
    """
    img, cmap = image_for_display(image)
    H, W = img.shape[:2]
    a = attn.detach().float().cpu()[None, None]
    up = F.interpolate(a, size=(H, W), mode="nearest")[0, 0]
    up = up / up.max().clamp_min(1e-12)
    rgba = torch.zeros(H, W, 4)
    rgba[..., :3] = torch.tensor(colour)
    rgba[..., 3] = alpha * up
    ax.imshow(img, cmap=cmap, interpolation="nearest")
    ax.imshow(rgba.numpy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_patch_grid(image: Tensor, patch_size: int, *, ax=None, numbers: bool = True, title: str | None = None,
                    colour: str = "tab:red"):
    """The image with the patch grid drawn on it and each patch numbered in sequence order (row-major).

    Args:
        image: ``(C, H, W)`` or ``(H, W)``.
        patch_size: side ``P`` of a patch; must divide ``H`` and ``W``.
        numbers: write each patch's index (its position in the token sequence).

    Returns:
        the figure.
    """
    img, cmap = image_for_display(image)
    H, W = img.shape[:2]
    if H % patch_size or W % patch_size:
        raise ValueError(f"patch_size={patch_size} must divide the image size {H}x{W}")
    if ax is None:
        fig, ax = plt.subplots(figsize=(3.2, 3.2))
    else:
        fig = ax.figure
    ax.imshow(img, cmap=cmap, extent=(0, W, H, 0), interpolation="nearest")
    for k in range(0, W + 1, patch_size):
        ax.axvline(k, color=colour, lw=1.2 if W // patch_size <= 16 else 0.5)
    for k in range(0, H + 1, patch_size):
        ax.axhline(k, color=colour, lw=1.2 if H // patch_size <= 16 else 0.5)
    h, w = H // patch_size, W // patch_size
    if numbers and h * w <= 64:
        for i in range(h):
            for j in range(w):
                ax.text((j + 0.5) * patch_size, (i + 0.5) * patch_size, str(i * w + j), color=colour,
                        ha="center", va="center", fontweight="bold")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title if title is not None else f"{h} x {w} = {h * w} patches of {patch_size} x {patch_size}")
    return fig


def plot_patch_sequence(image: Tensor, patch_size: int, *, max_patches: int = 16, per_row: int = 16):
    """The first ``max_patches`` patches of ``patchify(image)`` in sequence order, ``per_row`` to a row.

    A row is at most 9.6 in wide (tiles up to 0.75 in), so its numbers stay readable in the book's column.
    """
    img = torch.as_tensor(image).detach().float().cpu()
    img = img[None] if img.dim() == 2 else img  # (C, H, W)
    C = img.size(0)
    patches = patchify(img[None], patch_size)[0]  # (N, C*P*P)
    n = min(max_patches, patches.size(0))
    ncols = min(n, per_row)
    nrows = -(-n // ncols)
    tile = min(0.75, 9.6 / ncols)  # inches
    fig, axes = plt.subplots(nrows, ncols, figsize=(tile * ncols, (tile + 0.25) * nrows + 0.4), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[n:]:
        fig.delaxes(ax)  # a last row that is not full
    for i, ax in enumerate(axes.flat[:n]):
        p, cmap = image_for_display(patches[i].view(C, patch_size, patch_size))
        ax.imshow(p, cmap=cmap, vmin=float(img.min()) if cmap else None, vmax=float(img.max()) if cmap else None,
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(str(i))
    suffix = f" (first {n} of {patches.size(0)})" if n < patches.size(0) else ""
    fig.suptitle(f"the image as a sequence of patch tokens{suffix}")
    return fig


def cls_attention(weights: Tensor, grid: tuple[int, int]) -> Tensor:
    """The CLS token's attention to the patches, on the patch grid.

    Args:
        weights: ``(B, nh, 1 + N, 1 + N)`` attention weights of one layer (CLS first).
        grid: ``(h, w)`` with ``h * w = N``.

    Returns:
        ``(B, nh, h, w)``.
    """
    B, nh = weights.shape[:2]
    return weights[:, :, 0, 1:].reshape(B, nh, *grid)


def attention_rollout(maps: Sequence[Tensor], *, residual: float = 0.5) -> Tensor:
    """Attention rollout (Abnar and Zuidema, 2020): how much each output token draws on each input token.

    Each layer's head-averaged weights are mixed with the identity (the residual connection),
    ``A = residual * I + (1 - residual) * mean_heads(W)``, and the layers are multiplied in order.

    Args:
        maps: the per-layer weights ``(B, nh, T, T)``, first layer first.

    Returns:
        ``(B, T, T)``.
    """
    out = None
    for w in maps:
        a = w.float().mean(1)  # (B, T, T)
        eye = torch.eye(a.size(-1), device=a.device).expand_as(a)
        a = residual * eye + (1 - residual) * a
        a = a / a.sum(-1, keepdim=True)
        out = a if out is None else a @ out
    if out is None:
        raise ValueError("attention_rollout needs at least one layer's weights")
    return out


def plot_attention_overlay(images: Tensor, attn: Tensor, *, titles: Sequence[str] | None = None, ncols: int = 8,
                           cell: float = 1.3, alpha: float = 0.7):
    """Each image with an attention map over it (see :func:`draw_overlay`).

    Args:
        images: ``(B, C, H, W)`` or ``(B, H, W)``.
        attn: ``(B, h, w)`` attention on the patch grid (scaled per image for display).
        titles: one short title per image.
    """
    imgs = images.detach().float().cpu()
    imgs = imgs[:, None] if imgs.dim() == 3 else imgs
    B = imgs.size(0)
    ncols = min(ncols, B)
    nrows = -(-B // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols, (cell + 0.25) * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= B:
            continue
        draw_overlay(ax, imgs[i], attn[i], alpha=alpha)
        if titles is not None:
            ax.set_title(titles[i])
    fig.tight_layout()
    return fig


def position_similarity(pos_embed: Tensor, grid: tuple[int, int]) -> Tensor:
    """Cosine similarity of every patch's position embedding with every other one's.

    Args:
        pos_embed: ``(N, D)`` (patch positions only: drop the CLS position first) or ``(1, N, D)``.
        grid: ``(h, w)`` with ``h * w = N``.

    Returns:
        ``(h, w, h, w)``: entry ``[i, j]`` is the map of similarities of position ``(i, j)`` to all.
    """
    p = pos_embed.detach().float()
    p = p[0] if p.dim() == 3 else p
    h, w = grid
    if p.size(0) != h * w:
        raise ValueError(f"{p.size(0)} position embeddings do not fit a {h}x{w} grid (drop the CLS one?)")
    p = F.normalize(p, dim=-1)
    return (p @ p.T).reshape(h, w, h, w)


def plot_position_similarity(sim: Tensor, *, cell: float = 1.15, cmap: str = "RdBu_r", hide_self: bool = True):
    """The ViT-paper figure: for each patch position, a small map of its similarity to every position.

    Args:
        sim: ``(h, w, h, w)`` from :func:`position_similarity`.
        hide_self: grey out each map's own position (always 1) and scale the colours to the largest
            similarity between *different* positions, so that weak structure stays visible.
    """
    h, w = sim.shape[:2]
    sim = sim.detach().float().clone()
    if hide_self:
        for i in range(h):
            for j in range(w):
                sim[i, j, i, j] = float("nan")
        lim = float(sim.nan_to_num(0.0).abs().max().clamp_min(1e-6))
    else:
        lim = 1.0
    colours = plt.get_cmap(cmap).with_extremes(bad="lightgrey")
    fig, axes = plt.subplots(h, w, figsize=(cell * w + 1.2, cell * h + 0.4), squeeze=False)
    for i in range(h):
        for j in range(w):
            ax = axes[i][j]
            im = ax.imshow(sim[i, j].numpy(), cmap=colours, vmin=-lim, vmax=lim)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == h - 1:
                ax.set_xlabel(str(j))
            if j == 0:
                ax.set_ylabel(str(i))
    fig.supxlabel("patch column")
    fig.supylabel("patch row")
    fig.colorbar(im, ax=axes, fraction=0.035, pad=0.04, label="cosine similarity")
    return fig
