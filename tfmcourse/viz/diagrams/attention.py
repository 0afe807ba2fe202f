"""Attention diagrams: who reads whom, masks as the model applies them, heads, and the KV cache."""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyBboxPatch, Rectangle
from torch import Tensor, nn

from ...attention import causal_mask
from ...multihead import MultiHeadAttention
from ..ffn import token_influence
from .draw import _HEADS, COLOURS, FONT, INK, MIN_FONT, _arrow, _bands, _bipartite, _canvas, _fit_height, _text_width

__all__ = ["attention_masks", "plot_masks", "plot_self_vs_cross", "plot_attention_example", "plot_token_mixing",
           "plot_multihead", "plot_kv_cache"]



def attention_masks(model: nn.Module, *args, batch_index: int = 0, **kwargs) -> dict[str, dict]:
    """Run ``model(*args, **kwargs)`` and record, per attention layer, where each query may attend.

    Returns ``{layer name: {"allowed": (T, S) bool, "causal": bool, "mask": bool (a mask tensor was
    passed), "cross": bool}}`` for sequence ``batch_index``, in call order.
    """

    seen: dict[str, dict] = {}
    names = {m: n for n, m in model.named_modules() if isinstance(m, MultiHeadAttention)}

    def hook(module, args, kw):
        x = args[0]
        context = args[1] if len(args) > 1 else kw.get("context")
        T, S = x.size(1), (context if context is not None else x).size(1)
        allowed = torch.ones(T, S, dtype=torch.bool)
        mask = kw.get("mask")
        if mask is not None:
            m = mask.expand(x.size(0), 1, T, S) if mask.dim() == 4 else mask.expand(T, S)
            allowed &= (m[batch_index, 0] if m.dim() == 4 else m).cpu()
        causal = bool(kw.get("is_causal", False))
        if causal:
            allowed &= causal_mask(T, S)
        seen[names[module]] = dict(allowed=allowed, causal=causal, mask=mask is not None, cross=context is not None)

    handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in names]
    try:
        with torch.no_grad():
            model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    return seen


def plot_masks(panels: dict[str, tuple[Tensor, Sequence[str], Sequence[str]]]):
    """Boolean ``(T, S)`` masks as grids (blue = may attend), rows labelled by queries, columns by keys.

    ``panels`` maps a title (may hold a line break) to ``(allowed, query labels, key labels)``, e.g. built
    from :func:`attention_masks`.
    """
    # each panel's slot: its grid plus room for the next panel's row labels, or its title if that is wider
    title_in = {t: _text_width(t, MIN_FONT, "bold") + 0.15 for t in panels}
    cell = min(0.3, 5.9 / sum(len(k) + 2 for _, _, k in panels.values()))
    while sum(max((len(k) + 2) * cell, title_in[t]) for t, (_, _, k) in panels.items()) > 6.0 and cell > 0.15:
        cell -= 0.01
    rows = max(len(q) for _, q, _ in panels.values())
    long_keys = any(len(k) > 1 for _, _, ks in panels.values() for k in ks)
    head = 0.75 if long_keys else 0.35  # room for the key labels
    top = 0.55 + rows * cell
    fig, ax = _canvas(6.6, top + head + 0.55)
    x = 0.6
    for title, (allowed, q_labels, k_labels) in panels.items():
        T, S = allowed.shape
        x += max(0.0, title_in[title] - (S + 2) * cell) / 2  # centre a grid under a title wider than it
        for i in range(T):
            for j in range(S):
                ax.add_patch(Rectangle((x + j * cell, top - (i + 1) * cell), cell, cell, lw=0.8, edgecolor="white",
                                       facecolor="#4c72b0" if allowed[i, j] else "#e6e6e6"))
        for i, lab in enumerate(q_labels):
            ax.text(x - 0.06, top - (i + 0.5) * cell, lab, ha="right", va="center", fontsize=MIN_FONT, color=INK)
        for j, lab in enumerate(k_labels):
            ax.text(x + (j + 0.5) * cell, top + 0.06, lab, ha="center", va="bottom", fontsize=MIN_FONT, color=INK,
                    rotation=90 if len(lab) > 1 else 0)
        ax.text(x + S * cell / 2, top + head + 0.05, title, ha="center", va="bottom", fontsize=MIN_FONT, color=INK,
                weight="bold")
        x += (S + 2) * cell + max(0.0, title_in[title] - (S + 2) * cell) / 2
    for k, (label, colour) in enumerate((("may attend", "#4c72b0"), ("masked", "#e6e6e6"))):
        ax.add_patch(Rectangle((0.6 + 2.0 * k, 0.12), 0.22, 0.22, facecolor=colour, edgecolor="#999999"))
        ax.text(0.9 + 2.0 * k, 0.23, label, ha="left", va="center", fontsize=MIN_FONT)
    _fit_height(fig, ax, top + head + 0.55)
    return fig


# --------------------------------------------------------------------------------------------------
# Attention between tokens: who reads whom


def plot_self_vs_cross(target: Sequence[str], source: Sequence[str], *, causal: bool = False):
    """Self-attention (queries, keys and values all from ``target``) beside cross-attention (queries
    from ``target``, keys and values from ``source``); ``causal`` masks the self-attention."""

    fig, ax = _canvas(6.6, 2.75)
    T, S = len(target), len(source)
    links = causal_mask(T) if causal else torch.ones(T, T, dtype=torch.bool)
    _bipartite(ax, 0.1, 3.1, 0.45, 1.9, target, target, links.float() * 0.5, max_lw=2.5)
    _bipartite(ax, 3.5, 6.5, 0.45, 1.9, source, target, torch.ones(T, S) * 0.5, key_kind="cross", max_lw=2.5)
    for x, title, q, kv in ((1.6, ("masked " if causal else "") + "self-attention", "queries: X", "keys, values: X"),
                            (5.0, "cross-attention", "queries: X", "keys, values: M")):
        ax.text(x, 2.55, title, ha="center", va="center", fontsize=FONT + 1, weight="bold", color=INK)
        ax.text(x, 2.2, q, ha="center", va="bottom", fontsize=MIN_FONT, color=INK)
        ax.text(x, 0.15, kv, ha="center", va="center", fontsize=MIN_FONT, color=INK)
    return fig


def plot_attention_example(words: Sequence[str], weights: Tensor, query: int):
    """The worked example of chapter 3: one query's weights over the keys, and the whole ``(T, T)`` table."""
    T = len(words)
    fig, ax = _canvas(6.6, 3.0)
    row = torch.zeros(T, T)
    row[0] = weights[query]
    _bipartite(ax, 0.1, 3.3, 0.45, 2.3, words, [words[query]], row[:1], max_lw=8.0, numbers=True,
               query_kind="attention")
    ax.text(1.7, 2.75, f"query “{words[query]}”: its row of weights", ha="center", va="center",
            fontsize=MIN_FONT, color=INK)
    cell, x0, top = 0.5, 4.35, 2.45
    for i in range(T):
        ax.text(x0 - 0.08, top - (i + 0.5) * cell, words[i], ha="right", va="center", fontsize=MIN_FONT, color=INK,
                weight="bold" if i == query else "normal")
        for j in range(T):
            w = float(weights[i, j])
            ax.add_patch(Rectangle((x0 + j * cell, top - (i + 1) * cell), cell, cell, edgecolor="white", lw=1.0,
                                   facecolor=plt.cm.Blues(0.1 + 0.8 * w)))
            ax.text(x0 + (j + 0.5) * cell, top - (i + 0.5) * cell, f"{w:.2f}", ha="center", va="center",
                    fontsize=MIN_FONT, color="white" if w > 0.5 else INK)
    for j in range(T):
        ax.text(x0 + (j + 0.5) * cell, top + 0.06, words[j], ha="center", va="bottom", fontsize=MIN_FONT,
                color=INK)
    ax.add_patch(Rectangle((x0, top - (query + 1) * cell), T * cell, cell, fill=False, edgecolor="#c44e52", lw=2))
    ax.text(x0 + T * cell / 2, top - T * cell - 0.2, "rows: queries, columns: keys", ha="center", va="center",
            fontsize=MIN_FONT, color=INK)
    return fig


def plot_token_mixing(attn: nn.Module, ffn: nn.Module, x: Tensor, labels: Sequence[str] | None = None):
    """Which input token each output depends on, for an attention layer and an FFN (nonzero Jacobian
    blocks of the real modules, :func:`tfmcourse.viz.ffn.token_influence`)."""

    T = x.size(0)
    labels = list(labels or [f"x{t + 1}" for t in range(T)])
    fig, ax = _canvas(6.6, 2.7)
    for x0, x1, module, title, kind in ((0.1, 3.1, attn, "attention: mixes tokens", "attention"),
                                        (3.5, 6.5, ffn, "FFN: each token alone", "ffn")):
        links = (token_influence(module, x) > 1e-6).float() * 0.5  # (T_out, T_in)
        _bipartite(ax, x0, x1, 0.45, 1.9, labels, [f"y{t + 1}" for t in range(T)], links, query_kind=kind,
                   max_lw=2.5)
        ax.text((x0 + x1) / 2, 2.45, title, ha="center", va="center", fontsize=FONT + 1, weight="bold", color=INK)
    return fig


def plot_multihead(mha: MultiHeadAttention, T: int = 3):
    """Split and merge of heads in ``mha``: ``x`` → ``qkv`` → one attention per head → concat → ``proj``.

    The number of heads, their size and the names of the two projections are read from ``mha``; each
    matrix is drawn with one coloured band per head.
    """
    C, nh, hs = mha.d_model, mha.n_heads, mha.head_dim
    linear = [n for n, m in mha.named_children() if isinstance(m, nn.Linear)]
    into, out = linear[0], linear[-1]  # the fused input projection and the output projection (qkv, proj)
    W, cell = 0.75, 0.12  # width of a (T, C) matrix, height of a row
    heads = [_HEADS[h % len(_HEADS)] for h in range(nh)]
    fig, ax = _canvas(6.6, 2.9)
    ym, gap = 1.5, T * cell + 0.25

    def matrix(x: float, colours, label: str) -> None:
        _bands(ax, x, ym + T * cell / 2, T, colours, W, cell)
        ax.text(x + W / 2, ym - T * cell / 2 - 0.1, label, ha="center", va="top", fontsize=MIN_FONT)

    def step(x0: float, x1: float, label: str) -> None:
        _arrow(ax, (x0 + 0.05, ym), (x1 - 0.05, ym))
        ax.text((x0 + x1) / 2, ym + 0.07, label, ha="center", va="bottom", fontsize=MIN_FONT)

    x = 0.1
    matrix(x, ["#bfbfbf"], "x\n(T, C)")
    step(x + W, x + W + 0.5, into)
    x += W + 0.5
    for r, name in enumerate("qkv"):  # one matmul: every head's q, k and v side by side
        top = ym + gap + T * cell / 2 - r * gap
        _bands(ax, x, top, T, heads, W, cell)
        ax.text(x + W + 0.05, top - T * cell / 2, name, ha="left", va="center", fontsize=MIN_FONT)
    ax.text(x + W / 2, ym - gap - T * cell / 2 - 0.1, f"(T, 3C), C = {C}", ha="center", va="top",
            fontsize=MIN_FONT)
    step(x + W + 0.15, x + W + 0.7, "split")
    x += W + 0.7
    box_w, box_h = 1.05, min(0.36, 1.9 / nh - 0.08)
    for h in range(nh):
        yc = ym + (nh - 1) / 2 * (box_h + 0.08) - h * (box_h + 0.08)
        ax.add_patch(FancyBboxPatch((x, yc - box_h / 2), box_w, box_h, boxstyle="round,pad=0,rounding_size=0.05",
                                    facecolor=heads[h], alpha=0.35, edgecolor=INK, lw=1.0))
        if box_h >= 0.25:
            ax.text(x + box_w / 2, yc, f"head {h}", ha="center", va="center", fontsize=MIN_FONT)
    span = nh / 2 * (box_h + 0.08)
    ax.text(x + box_w / 2, ym + span + 0.05, "in parallel", ha="center", va="bottom", fontsize=MIN_FONT)
    ax.text(x + box_w / 2, ym - span - 0.05, f"(nh, T, hs)\n= ({nh}, T, {hs})", ha="center", va="top",
            fontsize=MIN_FONT)
    step(x + box_w, x + box_w + 0.7, "concat")
    x += box_w + 0.7
    matrix(x, heads, "(T, C)")
    step(x + W, x + W + 0.5, out)
    x += W + 0.5
    matrix(x, ["#bfbfbf"], "out\n(T, C)")
    return fig


def plot_kv_cache(weights: Sequence[Tensor], cached: Sequence[int], titles: Sequence[str] | None = None):
    """Each call of cached generation as a grid: rows are the queries computed in the call, columns the
    keys it attends over; grey keys came from the cache, orange ones were computed in this call.

    Args:
        weights: per call, one layer's attention weights ``(Tq, Tk)`` (recorded from a real model).
        cached: per call, how many keys were in the cache before it.
    """
    cell = min(0.36, 5.4 / sum(w.size(1) + 1.5 for w in weights))
    rows = max(w.size(0) for w in weights)
    top = rows * cell + 0.85
    fig, ax = _canvas(6.6, top + 0.65)
    x = 0.85
    ax.text(0.1, top - cell / 2, "queries", ha="left", va="center", fontsize=MIN_FONT)
    ax.text(0.1, top + 0.1, "keys →", ha="left", va="bottom", fontsize=MIN_FONT)
    for c, (w, n_cached) in enumerate(zip(weights, cached)):
        Tq, Tk = w.shape
        for i in range(Tq):
            for j in range(Tk):
                colour = ("#ffffff" if w[i, j] <= 0 else COLOURS["cache"] if j < n_cached else COLOURS["attention"])
                ax.add_patch(Rectangle((x + j * cell, top - (i + 1) * cell), cell, cell, facecolor=colour,
                                       edgecolor="#999999", lw=0.8))
        title = titles[c] if titles else f"call {c + 1}"
        ax.text(x + Tk * cell / 2, top + 0.35, title, ha="center", va="bottom", fontsize=MIN_FONT, weight="bold")
        ax.text(x + Tk * cell / 2, top + 0.08, f"{n_cached} cached + {Tk - n_cached} new", ha="center",
                va="bottom", fontsize=MIN_FONT)
        ax.text(x + Tk * cell / 2, top - Tq * cell - 0.1, f"{Tq} × {Tk}", ha="center", va="top", fontsize=MIN_FONT)
        x += (Tk + 1.5) * cell
    for k, (label, colour) in enumerate((("key from the cache", COLOURS["cache"]),
                                         ("computed now", COLOURS["attention"]))):
        ax.add_patch(Rectangle((0.85 + 2.6 * k, 0.12), 0.22, 0.22, facecolor=colour, edgecolor="#999999"))
        ax.text(1.15 + 2.6 * k, 0.23, label, ha="left", va="center", fontsize=MIN_FONT)
    return fig
