"""Head explorers: step through layers (or training checkpoints) and see every head's attention.

Frames are drawn once with :func:`tfmcourse.viz.attention.plot_attention` and switched in the browser,
so the explorer also works on the static book page.

    >>> from tfmcourse.viz.attention import record_attention
    >>> with record_attention(model) as maps:
    ...     model(idx)
    >>> attention_explorer({name: w[0] for name, w in maps.items()}, x_labels=tokens, y_labels=tokens)
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import ipywidgets as widgets
from torch import Tensor

from ..viz.attention import plot_attention
from .frames import fig_to_png, frame_explorer

__all__ = ["attention_explorer"]


def attention_explorer(maps: Mapping[str, Tensor], *, x_labels: Sequence[str] | None = None,
                       y_labels: Sequence[str] | None = None, description: str = "layer",
                       control: str = "dropdown", notes: Mapping[str, str] | None = None, ncols: int = 4,
                       cell: float = 2.2, value: int = 0, dpi: int = 72) -> widgets.VBox:
    """One frame per entry of ``maps`` (e.g. a layer or a checkpoint), each showing all heads.

    Args:
        maps: frame label -> attention weights ``(nh, T, S)`` (take one sequence of a batch).
        x_labels, y_labels: key and query labels (tokens).
        description: name of the control.
        control: ``"dropdown"`` or ``"slider"``.
        notes: optional frame label -> a line printed above that frame's heads (e.g. the loss).
        ncols, cell: layout of the heatmaps.
        value: the frame shown first.

    Returns:
        the explorer widget.
    """
    if not maps:
        raise ValueError("maps is empty: record some attention first (tfmcourse.viz.attention.record_attention)")
    frames = []
    for label, w in maps.items():
        if w.dim() != 3:
            raise ValueError(f"maps[{label!r}] must be (nh, T, S), got shape {tuple(w.shape)}; "
                             f"index one sequence of the batch, e.g. w[0]")
        fig = plot_attention(w, x_labels=x_labels, y_labels=y_labels, ncols=ncols, cell=cell)
        title = f"{label}: {notes[label]}" if notes and label in notes else str(label)
        fig.suptitle(title)
        fig.set_figheight(fig.get_figheight() + 0.35)  # room for the title line
        fig.tight_layout()
        frames.append(fig_to_png(fig, dpi=dpi))
    return frame_explorer(frames, [str(k) for k in maps], description=description, control=control, value=value)
