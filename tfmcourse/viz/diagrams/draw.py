"""Drawing primitives of the diagrams: one axes per figure, in inches, large labels, vector-friendly."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import Circle, FancyBboxPatch, Rectangle
from torch import Tensor

FONT = 12      # labels
MIN_FONT = 11  # nothing smaller: at the book's 688 px column a 6.6 in figure shows 11 pt as >= 15 px
INK = "#333333"
COLOURS = {"norm": "#f6e3a1", "attention": "#f4b183", "cross": "#f8cbad", "ffn": "#9dc3e6", "embed": "#c5e0b4",
           "head": "#d9d9d9", "stack": "#f2f2f2", "token": "#ffffff", "cache": "#bfbfbf"}
_HEADS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52")



def _canvas(w: float, h: float):
    fig = plt.figure(figsize=(w, h))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(0, w)
    ax.set_ylim(0, h)
    ax.axis("off")
    return fig, ax


def _box(ax, cx: float, cy: float, w: float, h: float, text: str = "", kind: str = "head", *,
         fontsize: float = FONT, lw: float = 1.2, **kw) -> None:
    ax.add_patch(FancyBboxPatch((cx - w / 2, cy - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.06",
                                facecolor=COLOURS.get(kind, kind), edgecolor=INK, lw=lw))
    if text:
        ax.text(cx, cy, text, ha="center", va="center", fontsize=fontsize, color=INK, **kw)


def _arrow(ax, p0, p1, *, lw: float = 1.4, color: str = INK, style: str = "-|>") -> None:
    ax.annotate("", xy=p1, xytext=p0, arrowprops=dict(arrowstyle=style, lw=lw, color=color, shrinkA=0, shrinkB=0,
                                                      mutation_scale=12))


def _line(ax, xs, ys, *, lw: float = 1.4, color: str = INK, **kw) -> None:
    ax.plot(xs, ys, color=color, lw=lw, solid_capstyle="round", **kw)


def _text_width(text: str, fontsize: float = MIN_FONT, weight: str = "normal") -> float:
    """Width in inches of the widest line of ``text`` as matplotlib will draw it."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import TextToPath

    prop = FontProperties(size=fontsize, weight=weight)
    return max(TextToPath().get_text_width_height_descent(line, prop, ismath=False)[0]
               for line in text.split("\n")) / 72


def _names(module, *names: str) -> list[str]:
    """``names``, after checking that ``module`` has each of them: a renamed layer fails loudly here
    instead of leaving a stale label in a diagram."""
    missing = [n for n in names if not hasattr(module, n)]
    if missing:
        raise AttributeError(f"{type(module).__name__} has no {', '.join(missing)}: update the diagram")
    return list(names)


def _fit_height(fig, ax, top: float, bottom: float = 0.0) -> None:
    """Crop the canvas to ``bottom .. top`` (inches), keeping one data unit = one inch."""
    fig.set_size_inches(fig.get_figwidth(), top - bottom)
    ax.set_ylim(bottom, top)


def _plus(ax, cx: float, cy: float, r: float = 0.13) -> None:
    ax.add_patch(Circle((cx, cy), r, facecolor="white", edgecolor=INK, lw=1.2, zorder=3))
    ax.text(cx, cy - 0.01, "+", ha="center", va="center", fontsize=FONT + 1, color=INK, zorder=4)


# --------------------------------------------------------------------------------------------------


def _bipartite(ax, x0: float, x1: float, y_keys: float, y_queries: float, keys: Sequence[str],
               queries: Sequence[str], weights: Tensor, *, key_kind: str = "token", query_kind: str = "token",
               max_lw: float = 5.0, numbers: bool = False) -> None:
    """Queries on top, keys below, a line per pair with ``weights[i, j] > 0`` (width by weight)."""
    def xs(n):
        step = (x1 - x0) / n
        return [x0 + step * (i + 0.5) for i in range(n)]

    xq, xk = xs(len(queries)), xs(len(keys))
    bw = min(0.62, 0.9 * (x1 - x0) / max(len(keys), len(queries)))
    for i, q in enumerate(queries):
        for j in range(len(keys)):
            w = float(weights[i, j])
            if w > 0:
                _line(ax, [xk[j], xq[i]], [y_keys + 0.17, y_queries - 0.17], lw=max(0.6, max_lw * w),
                      color="#4c72b0", alpha=0.35 + 0.65 * w)
                if numbers:
                    t = 0.3  # near the keys, where the lines are furthest apart
                    ax.text(xk[j] + t * (xq[i] - xk[j]), y_keys + 0.17 + t * (y_queries - y_keys - 0.34),
                            f"{w:.2f}", ha="center", va="center", fontsize=MIN_FONT, color=INK,
                            bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none"))
    for x, k in zip(xk, keys):
        _box(ax, x, y_keys, bw, 0.34, k, key_kind)
    for x, q in zip(xq, queries):
        _box(ax, x, y_queries, bw, 0.34, q, query_kind)


def _bands(ax, x: float, y: float, rows: int, colours: Sequence[str], w: float = 0.75, cell: float = 0.12) -> None:
    """A ``rows``-row matrix of width ``w`` with its top-left corner at ``(x, y)``, cut into one coloured
    band per entry of ``colours`` (one band per head)."""
    bw = w / len(colours)
    for i in range(rows):
        for j, c in enumerate(colours):
            ax.add_patch(Rectangle((x + j * bw, y - (i + 1) * cell), bw, cell, facecolor=c, edgecolor="white", lw=0.8))
