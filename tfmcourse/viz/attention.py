"""Look inside attention: record the weights of every layer and draw them as heatmaps."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn

from ..multihead import MultiHeadAttention

__all__ = ["record_attention", "plot_attention"]


@contextmanager
def record_attention(model: nn.Module) -> Iterator[dict[str, Tensor]]:
    """Collect the attention weights ``(B, nh, T, S)`` of every :class:`MultiHeadAttention` in ``model``.

    Inside the block, attention runs the written-out path (the fused kernel never forms the weights);
    after it, the dict maps each layer's name to the weights of its last call.

        >>> with record_attention(model) as maps:
        ...     model(idx)
        >>> maps["blocks.0.attn"].shape   # (B, nh, T, T)
    """
    layers = {name: m for name, m in model.named_modules() if isinstance(m, MultiHeadAttention)}
    maps: dict[str, Tensor] = {}
    for m in layers.values():
        m.keep_weights = True
    try:
        yield maps
    finally:
        for name, m in layers.items():
            m.keep_weights = False
            if m.last_weights is not None:
                maps[name] = m.last_weights
            m.last_weights = None


def plot_attention(weights: Tensor, *, x_labels: Sequence[str] | None = None, y_labels: Sequence[str] | None = None,
                   titles: Sequence[str] | None = None, ncols: int = 4, cell: float = 2.6, cmap: str = "viridis"):
    """Draw one heatmap per head: ``weights`` is ``(nh, T, S)`` or ``(T, S)``; rows are queries.

    Returns the matplotlib figure.
    """
    w = weights.detach().float().cpu()
    w = w[None] if w.dim() == 2 else w
    n = w.size(0)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    # Each panel is ``cell`` wide; the extra height holds its title and the key labels below it, so that
    # the heatmap itself stays about as wide as the cell allows.
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols, (cell + 0.3) * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        ax.imshow(w[i].numpy(), cmap=cmap, vmin=0.0, vmax=1.0)
        ax.set_title(titles[i] if titles else (f"head {i}" if n > 1 else "attention"))
        for setter, labels in ((ax.set_xticks, x_labels), (ax.set_yticks, y_labels)):
            if labels is not None:
                setter(range(len(labels)), labels)
            else:
                setter([])
        ax.set_xlabel("key")
        ax.set_ylabel("query")
    fig.tight_layout()
    return fig
