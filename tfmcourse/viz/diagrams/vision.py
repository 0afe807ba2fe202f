"""The Vision Transformer's pipeline, from an image to class scores."""
from __future__ import annotations

from matplotlib.patches import Rectangle
from torch import Tensor, nn

from .draw import MIN_FONT, _arrow, _box, _canvas, _line, _names

__all__ = ["plot_vit_pipeline"]



def plot_vit_pipeline(vit: nn.Module, image: Tensor):
    """``image`` ``(C, H, W)`` through ``vit``: patches, patch tokens, ``[CLS]`` and positions, the
    encoder, pooling and the head. Patch size, token count, depth and pooling are read from ``vit``."""
    c = vit.config
    P, side = c.patch_size, c.image_size // c.patch_size
    N = side * side
    img = image.detach().float().cpu()
    img = (img - img.min()) / (img.max() - img.min() + 1e-12)
    gray = img.mean(0) if img.size(0) != 3 else None
    show = (lambda a: dict(X=a.numpy(), cmap="gray_r", vmin=0, vmax=1)) if gray is not None else \
        (lambda a: dict(X=a.permute(1, 2, 0).numpy()))
    fig, ax = _canvas(6.6, 3.45)
    # 1. the image with its patch grid
    s0, y_top = 1.25, 3.0
    ax.imshow(**show(gray if gray is not None else img), extent=(0.15, 0.15 + s0, y_top - s0, y_top))
    for k in range(side + 1):
        _line(ax, [0.15 + k * s0 / side] * 2, [y_top - s0, y_top], lw=1.0, color="#c44e52")
        _line(ax, [0.15, 0.15 + s0], [y_top - k * s0 / side] * 2, lw=1.0, color="#c44e52")
    ax.text(0.15 + s0 / 2, y_top + 0.1, f"{c.image_size}×{c.image_size} image", ha="center", va="bottom",
            fontsize=MIN_FONT)
    # 2. the patches in sequence order (row by row), each becoming one token
    _arrow(ax, (1.5, y_top - s0 / 2), (1.85, y_top - s0 / 2))
    tile = min(0.27, 4.55 / N)
    x0 = 2.0
    cls = c.pool == "cls"
    for n in range(N):
        r, q = divmod(n, side)
        patch = (gray if gray is not None else img)[..., r * P:(r + 1) * P, q * P:(q + 1) * P]
        xl = x0 + n * tile
        ax.imshow(**show(patch), extent=(xl + 0.02, xl + tile - 0.02, y_top - s0 / 2 - tile / 2 + 0.02,
                                         y_top - s0 / 2 + tile / 2 - 0.02))
        ax.add_patch(Rectangle((xl + 0.02, y_top - s0 / 2 - tile / 2 + 0.02), tile - 0.04, tile - 0.04, fill=False,
                               edgecolor="#c44e52", lw=0.8))
    ax.set_xlim(0, 6.6)
    ax.set_ylim(0, 3.45)
    ax.text(x0 + N * tile / 2, y_top - s0 / 2 - tile / 2 - 0.1,
            f"{N} patches of {P}×{P}, row by row", ha="center", va="top", fontsize=MIN_FONT)
    # 3. the model, left to right
    embed, pos, blocks, norm, head = _names(vit, "patch_embed", "pos_embed", "blocks", "norm", "head")
    stages = [(f"{embed}\n+ [CLS]\n+ {pos}" if cls else f"{embed}\n+ {pos}", "embed"),
              (f"{blocks}: {len(vit.blocks)} ×\nencoder block", "stack"), (norm, "norm"),
              ("pool: [CLS]" if cls else "pool: mean", "attention" if cls else "ffn"),
              (f"{head} → {c.n_classes}", "head")]
    widths = [1.35, 1.45, 0.75, 1.2, 1.05]
    gap = (6.5 - sum(widths)) / (len(stages) - 1)
    x, yb = 0.05, 0.55
    _line(ax, [x0 + N * tile / 2, x0 + N * tile / 2, 0.05 + widths[0] / 2],
          [y_top - s0 / 2 - tile / 2 - 0.45, 1.2, 1.2])
    _arrow(ax, (0.05 + widths[0] / 2, 1.2), (0.05 + widths[0] / 2, yb + 0.35))
    for k, ((text, kind), w) in enumerate(zip(stages, widths)):
        _box(ax, x + w / 2, yb, w, 0.7, text, kind, fontsize=MIN_FONT)
        if k < len(stages) - 1:
            _arrow(ax, (x + w, yb), (x + w + gap, yb))
        x += w + gap
    return fig
