"""Explorers that work without a kernel: precomputed PNG frames in a ``Stack``, switched in the browser.

A static page (the built book) keeps a widget's saved state but has no Python to run callbacks, so an
explorer there shows frames computed beforehand: a slider or dropdown is ``jslink``-ed to the
``selected_index`` of a :class:`ipywidgets.Stack` of :class:`ipywidgets.Image` frames. The link runs in
the browser, so moving the slider works in the HTML too.
"""
from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ..viz.style import figure_png

__all__ = ["fig_to_png", "frame_explorer"]


def fig_to_png(fig: Figure, *, dpi: int = 80, tight: bool = True, fmt: str = "png") -> bytes:
    """Render ``fig`` to image bytes and close it (so notebooks do not also display it).

    Args:
        dpi: resolution.
        tight: crop to the drawn content; ``False`` keeps the figure size, so that frames of an
            explorer all have the same size and the page does not jump when the slider moves.
        fmt: ``"png"`` (plots) or ``"jpeg"`` (photographs: much smaller).
    """
    # The image records its smallest font, so the book can keep that text readable (viz.style).
    data = figure_png(fig, dpi=dpi, tight=tight, fmt=fmt)
    plt.close(fig)
    return data


def frame_explorer(frames: Sequence[bytes], labels: Sequence[str], *, description: str = "frame",
                   control: str = "slider", value: int = 0, caption: str | None = None,
                   width: str | None = None, image_format: str = "png") -> widgets.VBox:
    """A control over precomputed image ``frames``; ``labels[i]`` names frame ``i``.

    Args:
        frames: encoded images (see :func:`fig_to_png`).
        labels: one short, unique label per frame, shown next to the control.
        description: the control's name.
        control: ``"slider"`` (ordered frames) or ``"dropdown"`` (named frames).
        value: the frame shown first.
        caption: optional HTML shown above the control.
        width: CSS width of the images (e.g. ``"600px"``); natural size by default.
        image_format: ``"png"`` or ``"jpeg"``, as produced by :func:`fig_to_png`.

    Returns:
        a ``VBox`` holding the control and a ``Stack`` of ``Image`` widgets, linked in the browser.
    """
    if len(frames) != len(labels) or not frames:
        raise ValueError(f"need one label per frame and at least one frame, got {len(frames)} frames "
                         f"and {len(labels)} labels")
    if len(set(labels)) != len(labels):
        raise ValueError(f"frame labels must be unique, got {list(labels)}")
    if not 0 <= value < len(frames):
        raise ValueError(f"value={value} is not a frame index (0..{len(frames) - 1})")
    layout = widgets.Layout(width=width) if width else widgets.Layout()
    images = [widgets.Image(value=frame, format=image_format, layout=layout) for frame in frames]
    stack = widgets.Stack(images, selected_index=value)
    if control == "slider":
        # SelectionSlider shows the label; its `index` is what we link.
        ctrl = widgets.SelectionSlider(options=list(labels), value=labels[value], description=description,
                                       continuous_update=True, layout=widgets.Layout(width="420px"),
                                       style={"description_width": "initial"})
    elif control == "dropdown":
        ctrl = widgets.Dropdown(options=list(labels), value=labels[value], description=description,
                                style={"description_width": "initial"})
    else:
        raise ValueError(f"control must be 'slider' or 'dropdown', got {control!r}")
    link = widgets.jslink((ctrl, "index"), (stack, "selected_index"))  # runs in the browser, no kernel needed
    children = [ctrl, stack]
    if caption:
        children.insert(0, widgets.HTML(caption))
    box = widgets.VBox(children)
    box.link = link  # kept for inspection (and so the link object lives as long as the explorer)
    return box
