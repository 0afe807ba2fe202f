"""Positional-encoding explorer: move through positions and see how alike the encodings are.

Every frame is drawn in advance (see :mod:`tfmcourse.widgets.frames`), so the slider also works in
the static book; in a notebook the same call gives the same widget.
"""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch

from ..embedding import LearnedPositionalEmbedding, sinusoidal_encoding
from ..viz.positions import one_hot_positions, position_similarity
from .frames import fig_to_png, frame_explorer

__all__ = ["position_frames", "position_explorer"]


def position_frames(positions: Sequence[int], *, n_positions: int = 64, d_model: int = 32, seed: int = 0,
                    dpi: int = 72) -> list[bytes]:
    """One PNG per position ``p``: the sinusoidal vector of ``p`` and ``p``'s similarity to every position.

    The right panel compares three encodings of width ``d_model`` (one-hot needs ``n_positions``):
    sinusoidal, learned right after initialisation, and one-hot.
    """
    pe = sinusoidal_encoding(n_positions, d_model)  # (P, d)
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    learned = LearnedPositionalEmbedding(n_positions, d_model).weight.detach()  # (P, d), untrained
    torch.random.set_rng_state(gen_state)
    sims = {"sinusoidal": position_similarity(pe), "learned (at init)": position_similarity(learned),
            "one-hot": position_similarity(one_hot_positions(n_positions))}
    styles = {"sinusoidal": dict(color="C0", lw=2), "learned (at init)": dict(color="C2", lw=1, alpha=0.8),
              "one-hot": dict(color="C3", lw=1.5, ls="--")}
    frames = []
    for p in positions:
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.0), gridspec_kw={"width_ratios": [1, 1.3]})
        ax1.bar(range(d_model), pe[p].numpy(), color=["C0" if j % 2 == 0 else "C1" for j in range(d_model)])
        ax1.set_ylim(-1.1, 1.1)
        ax1.set_xlabel("dimension $j$ (blue: sin, orange: cos)")
        ax1.set_title(f"sinusoidal encoding of position {p}")
        for name, s in sims.items():
            ax2.plot(s[p].numpy(), label=name, **styles[name])
        ax2.axvline(p, color="0.6", lw=0.8)
        ax2.set_ylim(-0.6, 1.05)
        ax2.set_xlim(0, n_positions - 1)
        ax2.set_xlabel("other position")
        ax2.set_title(f"cosine similarity of position {p} to every position")
        ax2.legend(loc="lower right")
        fig.tight_layout()
        frames.append(fig_to_png(fig, dpi=dpi))
    return frames


def position_explorer(*, n_positions: int = 64, d_model: int = 32, step: int = 3, seed: int = 0):
    """A slider over positions ``0, step, 2*step, …`` showing :func:`position_frames` (works without a kernel)."""
    positions = list(range(0, n_positions, step))
    frames = position_frames(positions, n_positions=n_positions, d_model=d_model, seed=seed)
    return frame_explorer(frames, [str(p) for p in positions], description="position", value=len(positions) // 3)
