"""Where a layer's compute goes: a slider over the sequence length, precomputed for the static book."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import ipywidgets as widgets

from ..viz.costs import plot_flop_shares
from .frames import fig_to_png, frame_explorer

__all__ = ["DEFAULT_MODELS", "flop_share_explorer"]

#: Layer shapes of a few well-known models (keyword arguments of :func:`tfmcourse.viz.costs.layer_flops`).
DEFAULT_MODELS: dict[str, dict] = {
    "GPT-2 small (d=768)": dict(d_model=768),
    "GPT-2 XL (d=1600)": dict(d_model=1600),
    "LLaMA 7B (d=4096, SwiGLU 11008)": dict(d_model=4096, d_ff=11008, swiglu=True),
}


def flop_share_explorer(models: Mapping[str, dict] | None = None,
                        seq_lens: Sequence[int] = tuple(2 ** k for k in range(7, 18)), *, value: int | None = None,
                        dpi: int = 80) -> widgets.VBox:
    """Slider over sequence lengths; each frame shows every model's FLOP split at that length.

    Args:
        models: name -> ``layer_flops`` keyword arguments (default :data:`DEFAULT_MODELS`).
        seq_lens: the lengths offered by the slider.
        value: index of the length shown first (default: the middle one).
    """
    models = DEFAULT_MODELS if models is None else models
    frames = [fig_to_png(plot_flop_shares(T, models), dpi=dpi) for T in seq_lens]
    labels = [f"{T:,}" for T in seq_lens]
    return frame_explorer(frames, labels, description="sequence length T", control="slider",
                          value=len(seq_lens) // 2 if value is None else value)
