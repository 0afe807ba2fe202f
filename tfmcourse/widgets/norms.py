"""Residual depth explorer: add layers and watch the gradient reach (or not reach) the input.

Frames are measured and drawn in advance (see :mod:`tfmcourse.widgets.frames`), so the slider also
works in the static book.
"""
from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt

from ..viz.norms import plot_grad_norms, stack_grad_norms
from .frames import fig_to_png, frame_explorer

__all__ = ["depth_frames", "depth_explorer"]


def depth_frames(depths: Sequence[int], *, seeds: Sequence[int] = (0, 1, 2), dpi: int = 72) -> list[bytes]:
    """One PNG per depth: gradient norm per layer, residual vs plain, without and with LayerNorm."""
    measured = {(L, res, nrm): stack_grad_norms(L, residual=res, norms=nrm, seeds=seeds)
                for L in depths for res in (True, False) for nrm in (False, True)}
    frames = []
    for L in depths:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.2), sharey=True)
        for ax, nrm in zip(axes, (False, True)):
            curves = {"x + f(x)  (residual)": measured[(L, True, nrm)], "f(x)  (plain)": measured[(L, False, nrm)]}
            kind = "sub-layers with LayerNorm (pre-LN)" if nrm else "sub-layers without normalization"
            res_in, plain_in = measured[(L, True, nrm)][0], measured[(L, False, nrm)][0]
            plain_txt = "0 (underflow)" if plain_in == 0 else f"{plain_in:.2g}"
            plot_grad_norms(curves, ax=ax, ylim=(1e-12, 1e4), xmax=max(depths),
                            title=f"{L} blocks, {kind}\ngradient at the input: residual {res_in:.2g}, "
                                  f"plain {plain_txt}")
        axes[1].set_ylabel("")
        fig.tight_layout()
        frames.append(fig_to_png(fig, dpi=dpi))
    return frames


def depth_explorer(depths: Sequence[int] = (1, 2, 4, 8, 16, 24, 32), *, seeds: Sequence[int] = (0, 1, 2)):
    """A slider over stack depth showing :func:`depth_frames` (works without a kernel)."""
    frames = depth_frames(depths, seeds=seeds)
    return frame_explorer(frames, [str(L) for L in depths], description="blocks", value=len(depths) // 2)

