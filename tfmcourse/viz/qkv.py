"""Why attention scores are scaled by 1/sqrt(d_k): measure the scores and the softmax they feed.

For random queries and keys with unit-variance components, ``q · k`` is a sum of ``d_k`` products of
variance 1, so its variance is ``d_k``. Without the scale the scores spread out as ``d_k`` grows and
the softmax saturates onto one key; with it the variance stays 1 at every width.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import torch
from torch import Tensor

from ..attention import scaled_dot_product_attention

__all__ = ["attention_entropy", "score_statistics", "plot_score_statistics"]


def attention_entropy(weights: Tensor) -> Tensor:
    """Entropy ``-Σ_j w_j ln w_j`` (nats) of each row of attention weights ``(..., S)`` -> ``(...)``.

    ``ln S`` for uniform attention, 0 when a row puts all its weight on one key.
    """
    w = weights.clamp_min(1e-30)
    return -(weights * w.log()).sum(-1)


def score_statistics(d_ks: Sequence[int], *, n_keys: int = 16, n_queries: int = 256, seed: int = 0
                     ) -> dict[str, Tensor]:
    """Scores and softmax weights of random unit-variance queries and keys, with and without the scale.

    For each ``d_k``: ``n_queries`` queries attend over the same ``n_keys`` keys, components ~ N(0, 1).

    Returns:
        a dict of ``(len(d_ks),)`` tensors: ``d_k``, ``var_raw`` / ``var_scaled`` (variance of
        ``q·k`` and of ``q·k/√d_k``), ``max_raw`` / ``max_scaled`` (mean largest weight of a row) and
        ``entropy_raw`` / ``entropy_scaled`` (mean row entropy, nats).
    """
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, list[float]] = {k: [] for k in ("var_raw", "var_scaled", "max_raw", "max_scaled",
                                                    "entropy_raw", "entropy_scaled")}
    for d_k in d_ks:
        q = torch.randn(n_queries, d_k, generator=gen, dtype=torch.float64)  # (T, d_k)
        k = torch.randn(n_keys, d_k, generator=gen, dtype=torch.float64)     # (S, d_k)
        v = torch.zeros(n_keys, 1, dtype=torch.float64)                      # values do not matter here
        scores = q @ k.T                                                     # (T, S)
        out["var_raw"].append(scores.var().item())
        out["var_scaled"].append((scores / d_k ** 0.5).var().item())
        for tag, scale in (("raw", 1.0), ("scaled", None)):
            _, w = scaled_dot_product_attention(q, k, v, scale=scale, return_weights=True)  # (T, S)
            out[f"max_{tag}"].append(w.max(-1).values.mean().item())
            out[f"entropy_{tag}"].append(attention_entropy(w).mean().item())
    stats = {k: torch.tensor(v) for k, v in out.items()}
    stats["d_k"] = torch.tensor(list(d_ks))
    stats["n_keys"] = torch.tensor(n_keys)
    return stats


def plot_score_statistics(stats: Mapping[str, Tensor]):
    """Three panels over ``d_k``: score variance, mean largest weight, mean entropy (raw vs scaled).

    One legend below the panels; the dotted reference lines are labelled where they are drawn.
    Returns the figure.
    """
    d = stats["d_k"].numpy()
    n = int(stats["n_keys"])
    fig, (ax_var, ax_max, ax_ent) = plt.subplots(1, 3, figsize=(10.2, 3.7))
    raw, scaled = dict(color="C3", marker="o", ms=4, label=r"$q\cdot k$ (unscaled)"), \
        dict(color="C0", marker="s", ms=4, label=r"$q\cdot k/\sqrt{d_k}$ (scaled)")
    ref = dict(color="0.5", ls=":")
    ax_var.loglog(d, stats["var_raw"].numpy(), **raw)
    ax_var.loglog(d, stats["var_scaled"].numpy(), **scaled)
    ax_var.loglog(d, d, **ref)
    ax_var.text(d[2], d[2] * 5, "dotted: $d_k$", color="0.4", ha="center", va="bottom")
    ax_var.set_title("variance of the score")
    ax_max.semilogx(d, stats["max_raw"].numpy(), **raw)
    ax_max.semilogx(d, stats["max_scaled"].numpy(), **scaled)
    ax_max.axhline(1 / n, **ref)
    ax_max.text(d[-1], 1 / n + 0.03, f"uniform: 1/{n}", color="0.4", ha="right", va="bottom")
    ax_max.set_ylim(0, 1.05)
    ax_max.set_title("largest weight in a row")
    ax_ent.semilogx(d, stats["entropy_raw"].numpy(), **raw)
    ax_ent.semilogx(d, stats["entropy_scaled"].numpy(), **scaled)
    uniform = float(torch.log(torch.tensor(float(n))))
    ax_ent.axhline(uniform, **ref)
    ax_ent.text(d[-1], uniform * 1.02, f"uniform: ln {n}", color="0.4", ha="right", va="bottom")
    ax_ent.set_ylim(0, uniform * 1.18)
    ax_ent.set_title("entropy of a row (nats)")
    for ax in (ax_var, ax_max, ax_ent):
        ax.set_xlabel("$d_k$")
        ax.grid(True, which="major", alpha=0.3)
    fig.legend(*ax_var.get_legend_handles_labels(), loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig
