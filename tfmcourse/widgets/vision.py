"""Explorers for the Vision Transformer: patch sizes on an image, and what the CLS token looks at.

Frames are precomputed and switched in the browser, so both explorers work on the static book page.
"""
from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from torch import Tensor

from ..viz.vision import attention_rollout, cls_attention, draw_overlay, plot_patch_grid
from .frames import fig_to_png, frame_explorer

__all__ = ["patch_size_explorer", "vit_attention_explorer"]


def patch_size_explorer(image: Tensor, patch_sizes: Sequence[int], *, value: int | None = None,
                        cls_token: bool = True, dpi: int = 72) -> widgets.VBox:
    """Slider over patch sizes: the image cut into patches, with the sequence length it gives.

    Args:
        image: ``(C, H, W)`` or ``(H, W)``; every patch size must divide ``H`` and ``W``.
        patch_sizes: the sizes offered by the slider.
        value: index of the size shown first (default: the middle one).
        cls_token: count a CLS token in the sequence length.
    """
    img = torch.as_tensor(image)
    H, W = img.shape[-2:]
    C = 1 if img.dim() == 2 else img.size(0)
    frames = []
    for P in patch_sizes:
        n = (H // P) * (W // P)
        T = n + int(cls_token)
        fig, ax = plt.subplots(figsize=(4.4, 5.2))
        plot_patch_grid(img, P, ax=ax, numbers=n <= 16, title="")
        ax.set_title(f"P = {P}: {H // P} x {W // P} = {n} patches,\neach {C}·{P}·{P} = {C * P * P:,} numbers\n"
                     f"sequence length {T}: {T * T:,} weights per head")
        fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.86)
        frames.append(fig_to_png(fig, dpi=dpi, tight=False, fmt="jpeg" if C == 3 else "png"))
    return frame_explorer(frames, [str(P) for P in patch_sizes], description="patch size P", control="slider",
                          value=len(patch_sizes) // 2 if value is None else value,
                          image_format="jpeg" if C == 3 else "png")


def vit_attention_explorer(images: Tensor, layer_maps: Sequence[Tensor], grid: tuple[int, int], *,
                           titles: Sequence[str] | None = None, cell: float = 1.6, dpi: int = 72,
                           alpha: float = 0.7) -> widgets.VBox:
    """Slider over images: each frame shows the image, every head's CLS attention in the last layer,
    and the attention rollout of all layers, overlaid on the image.

    Args:
        images: ``(B, C, H, W)``.
        layer_maps: per layer, the weights ``(B, nh, 1 + N, 1 + N)`` (e.g. from ``record_attention``).
        grid: the patch grid ``(h, w)``.
        titles: one line per image (e.g. ``"label 3, predicted 3"``).
    """
    imgs = images.detach().float().cpu()
    B = imgs.size(0)
    last = cls_attention(layer_maps[-1].cpu(), grid)  # (B, nh, h, w)
    roll = attention_rollout([m.cpu() for m in layer_maps])[:, 0, 1:].reshape(B, *grid)  # (B, h, w)
    nh = last.size(1)
    frames, labels = [], []
    for i in range(B):
        panels = [("image", None)] + [(f"head {h}", last[i, h]) for h in range(nh)] + [("rollout", roll[i])]
        fig, axes = plt.subplots(1, len(panels), figsize=(cell * len(panels), cell + 0.45))
        for ax, (name, a) in zip(axes, panels):
            if a is None:
                draw_overlay(ax, imgs[i], torch.zeros(grid), alpha=0.0)
            else:
                draw_overlay(ax, imgs[i], a, alpha=alpha)
            ax.set_title(name)
        if titles is not None:
            fig.suptitle(titles[i])
        fig.tight_layout()
        frames.append(fig_to_png(fig, dpi=dpi))
        labels.append(str(i))
    return frame_explorer(frames, labels, description="test image", control="slider")
