"""Every plot and explorer frame the book shows keeps its text readable in the book's column.

Each figure is drawn in the book's style with the arguments its chapter uses (stand-in data of the
same shape) and written as the book writes it: an SVG for a figure, a PNG (or JPEG) for an explorer's
frame. The font record in that file (:mod:`tfmcourse.viz.style`) and the file's width give the size
of the smallest text once the figure is shown in the column, which must be at least ``MIN_TEXT_PX``.
The column here is ``COLUMN_WIDTH_IN`` (691 CSS px), a little narrower than the 755-790 px the browser
test measures, so a figure that passes here also fits the column there without scrolling.

Also checked: tick labels do not run into each other, no panel's labels reach into another panel,
and a frame drawn at a fixed size (``tight=False``) does not cut off its own text.
"""
from __future__ import annotations

import io
import itertools
import re

import matplotlib

matplotlib.use("Agg")

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pytest
import torch
from PIL import Image

from tfmcourse.viz import attention as vattn
from tfmcourse.viz import costs, ffn, heads, norms, positions, qkv, seq2seq, training, vision
from tfmcourse.viz.style import (
    COLUMN_WIDTH_IN,
    MIN_TEXT_PX,
    book_style,
    figure_svg,
    read_figure_record,
    smallest_text_px,
)
from tfmcourse.widgets import attention as wattn
from tfmcourse.widgets import costs as wcosts
from tfmcourse.widgets import frames as wframes
from tfmcourse.widgets import heads as wheads
from tfmcourse.widgets import norms as wnorms
from tfmcourse.widgets import positions as wpos
from tfmcourse.widgets import training as wtrain
from tfmcourse.widgets import vision as wvision

COLUMN_PX = COLUMN_WIDTH_IN * 96  # CSS px; an image is shown at most at its natural size
WIDGET_MODULES = (wattn, wcosts, wheads, wnorms, wpos, wtrain, wvision)


def _rand_attention(nh: int, T: int, S: int | None = None, causal: bool = False) -> torch.Tensor:
    scores = torch.randn(nh, T, S or T, generator=torch.Generator().manual_seed(0))
    if causal:
        scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(-1)  # (nh, T, S)


def _history(steps: int = 60) -> list[dict]:
    train = [dict(split="train", step=s, loss=3 / (s + 1), grad_norm=1 + 5 / (s + 1)) for s in range(steps)]
    val = [dict(split="val", step=s, loss=3 / (s + 1), exact_match=s / steps, bleu=s / steps)
           for s in range(0, steps, 10)]
    return train + val


DIGITS = [str(d) for d in torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(1)).tolist()]
WORDS = ["the", "cat", "sat", "on", "the", "mat"]
SENTENCES = [WORDS, ["a", "dog", "ran", "<pad>", "<pad>", "<pad>"]]
MODELS = wcosts.DEFAULT_MODELS

# name -> (chapter, a function drawing the figure as the book does)
FIGURES = {
    "position table": ("ch01", lambda: positions.plot_position_table(torch.randn(64, 64))),
    "position similarity": ("ch01", lambda: positions.plot_position_similarity(
        {"one-hot": positions.one_hot_positions(64), "sinusoidal": torch.randn(64, 64),
         "learned, at init": torch.randn(64, 64)})),
    "rotary pairs": ("ch01", lambda: positions.plot_rotary_pairs(torch.randn(8), n_positions=24)),
    "grad norms": ("ch02", lambda: norms.plot_grad_norms({"residual": [1.0] * 8,
                                                          "plain": [0.1 ** i for i in range(8)]})),
    "loss curves": ("ch02", lambda: norms.plot_loss_curves({"post-LN": [3.0 - i / 100 for i in range(200)],
                                                            "pre-LN": [3.0 - i / 80 for i in range(200)]},
                                                           reference=2.77, title="training loss")),
    "attention (words)": ("ch03", lambda: vattn.plot_attention(_rand_attention(1, 6)[0], x_labels=WORDS,
                                                               y_labels=WORDS, cell=3.2)),
    "score statistics": ("ch03", lambda: qkv.plot_score_statistics(
        qkv.score_statistics([1, 4, 16, 64, 256, 1024], n_keys=16, n_queries=32))),
    "masks": ("ch03", lambda: vattn.plot_attention(
        torch.stack([torch.ones(6, 6).tril()] * 3), x_labels=list("012345"), y_labels=list("012345"),
        titles=["causal", "padding (length 3)", "causal and padding"], cell=3.0)),
    "head split": ("ch04", lambda: heads.plot_head_split(T=3, d_model=8, n_heads=2)),
    "attention (4 heads, T=16)": ("ch04", lambda: vattn.plot_attention(
        _rand_attention(4, 16, causal=True), x_labels=DIGITS, y_labels=DIGITS, cell=2.4)),
    "offset profile": ("ch04", lambda: heads.plot_offset_profile(torch.rand(4, 7))),
    "cross-attention": ("ch04", lambda: vattn.plot_attention(
        _rand_attention(4, 5, 7), x_labels=[f"s{j}" for j in range(7)], y_labels=[f"t{i}" for i in range(5)],
        cell=2.3)),
    "scaling": ("ch04", lambda: costs.plot_scaling([1, 2, 4, 8], {"loop over heads": [1, 2, 4, 8], "batched": [3] * 4},
                                                   xlabel="number of heads", ylabel="ms per call", title="time")),
    "token influence": ("ch05", lambda: ffn.plot_token_influence(
        {"FFN": torch.eye(8), "self-attention": torch.rand(8, 8), "causal self-attention": torch.rand(8, 8).tril()})),
    "activations": ("ch05", lambda: ffn.plot_activations()),
    "ablation": ("ch05", lambda: ffn.plot_ablation(
        {"attention + FFN": [2.0] * 100, "attention only": [2.1] * 100, "FFN only": [2.3] * 100}, [0, 50, 100],
        {"attention + FFN": [0.1, 0.6, 0.9], "attention only": [0.1, 0.3, 0.4], "FFN only": [0.1, 0.2, 0.2]},
        baselines={"guessing": 0.1, "best from x_t alone": 0.3})),
    "flops vs T": ("ch05", lambda: costs.plot_flops_vs_seq_len(768)),
    "flop shares": ("ch05", lambda: costs.plot_flop_shares(4096, MODELS)),
    "lr curves": ("ch06", lambda: training.plot_lr_curves(
        {"warmup 60 + cosine": [1e-3] * 100, "constant": [1e-3] * 100}, warmup_marks={"warmup 60 + cosine": 60})),
    "decay experiment": ("ch06", lambda: training.plot_decay_experiment(
        training.decay_experiment([0.01, 0.1, 1.0, 10.0], steps=20, n=20), [0.01, 0.1, 1.0, 10.0], lr=1e-2,
        weight_decay=0.1)),
    "history": ("ch06", lambda: training.plot_history({"GPT": _history()}, val=True, window=5,
                                                      legend_loc="center right", title="GPT on the corpus")),
    "accuracy by length": ("ch06", lambda: seq2seq.plot_accuracy_by_length(
        {"Transformer": {n: 1 - n / 20 for n in range(1, 9)}, "GRU": {n: 1 - n / 10 for n in range(1, 9)}})),
    "patch grid": ("ch07", lambda: vision.plot_patch_grid(torch.rand(8, 8), 2)),
    "patch sequence": ("ch07", lambda: vision.plot_patch_sequence(torch.rand(8, 8), 2)),
    "attention overlay": ("ch07", lambda: vision.plot_attention_overlay(
        torch.rand(12, 1, 8, 8), torch.rand(12, 4, 4), titles=["3 → 3"] * 12, ncols=6, cell=1.4)),
    "ViT position similarity": ("ch07", lambda: vision.plot_position_similarity(
        vision.position_similarity(torch.randn(16, 32), (4, 4)))),
}


def _stack_frames(box: widgets.VBox) -> list[bytes]:
    stack = next(c for c in box.children if isinstance(c, widgets.Stack))
    return [bytes(img.value) for img in stack.children]


def _snapshot() -> dict:
    return {"attn": torch.rand(6, 5), "attn_src": "1234", "attn_tgt": "43210", "step": 200, "exact_match": 0.5,
            "bleu": 0.7, "examples": [("1234", "4321", "4321"), ("98765", "56789", "5678")]}


# name -> (chapter, a function returning the explorer's frames as the book builds them)
FRAMES = {
    "position explorer": ("ch01", lambda: wpos.position_frames([0, 21])),
    "depth explorer": ("ch02", lambda: wnorms.depth_frames([2, 4], seeds=(0,))),
    "scaling explorer": ("ch03", lambda: wattn.scaling_frames([1, 64])),
    "mask explorer": ("ch03", lambda: wattn.mask_frames(SENTENCES)),
    "head explorer": ("ch04", lambda: _stack_frames(wheads.attention_explorer(
        {"step 0": _rand_attention(4, 16, causal=True)}, x_labels=DIGITS, y_labels=DIGITS, control="slider",
        cell=2.6, notes={"step 0": "loss on the probe sequences 4.61"}))),
    "flop share explorer": ("ch05", lambda: _stack_frames(wcosts.flop_share_explorer(seq_lens=(128, 131072)))),
    "schedule explorer": ("ch06", lambda: [f for row in wtrain.schedule_frames(1000, [0, 400], [0.0, 0.5])
                                           for f in row]),
    "progress explorer": ("ch06", lambda: wtrain.progress_frames([_snapshot()])),
    "ViT attention explorer": ("ch07", lambda: _stack_frames(wvision.vit_attention_explorer(
        torch.rand(2, 1, 8, 8), [_rand_attention(4, 17)[None].expand(2, -1, -1, -1)] * 2, (4, 4),
        titles=["test image 0: a 3, predicted 3", "test image 1: a 8, predicted 8"]))),
    "patch size explorer (RGB)": ("ch07", lambda: _stack_frames(wvision.patch_size_explorer(
        torch.rand(3, 224, 224), [8, 16, 112]))),
}


def _params(table: dict) -> list:
    return [pytest.param(name, marks=getattr(pytest.mark, chapter)) for name, (chapter, _) in table.items()]


def _ink(text, renderer):
    """The box of a text's glyphs: its extent shrunk to 70 % across the line (the rest is line spacing)."""
    box = text.get_window_extent(renderer)
    return box.shrunk(0.7, 1.0) if round(text.get_rotation()) % 180 == 90 else box.shrunk(1.0, 0.7)


def _tick_label_overlaps(fig) -> list[str]:
    """Neighbouring tick labels of an axis that run into each other."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = []
    for ax in fig.axes:
        for axis, lo, hi in ((ax.xaxis, "x0", "x1"), (ax.yaxis, "y0", "y1")):
            labels = [t for t in axis.get_ticklabels() if t.get_visible() and t.get_text().strip()]
            # A text's box is a full line high; its glyphs fill about 70 % of that (digits, capitals).
            boxes = sorted(((_ink(t, renderer), t.get_text()) for t in labels), key=lambda b: getattr(b[0], lo))
            for (a, ta), (b, tb) in itertools.pairwise(boxes):
                if a.overlaps(b) and getattr(b, lo) < getattr(a, hi) - 0.5:
                    found.append(f"{ax.get_title()!r}: tick labels {ta!r} and {tb!r} overlap")
    return found


def _labels_over_other_panels(fig) -> list[str]:
    """Titles, axis labels and tick labels of one panel that reach into another panel."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = []
    for ax in fig.axes:
        texts = [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.get_xticklabels(), *ax.get_yticklabels()]
        for t in texts:
            if not (t.get_visible() and t.get_text().strip()):
                continue
            ink = _ink(t, renderer)
            for other in fig.axes:
                if other is not ax and other.get_visible() and other.axison and ink.overlaps(other.bbox):
                    found.append(f"{t.get_text()!r} of {ax.get_title()!r} reaches into {other.get_title()!r}")
    return found


def _cut_off_texts(fig) -> list[str]:
    """Texts that stick out of the figure (only possible for a figure saved at its fixed size)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = fig.bbox
    out = []
    for t in fig.findobj(matplotlib.text.Text):
        if t.get_visible() and t.get_text().strip():
            bb = t.get_window_extent(renderer)
            if bb.x0 < frame.x0 - 1 or bb.x1 > frame.x1 + 1 or bb.y0 < frame.y0 - 1 or bb.y1 > frame.y1 + 1:
                out.append(t.get_text())
    return out


@pytest.mark.parametrize("name", _params(FIGURES))
def test_figure_text_is_readable_in_the_column(name):
    with book_style():
        fig = FIGURES[name][1]()
        overlaps = _tick_label_overlaps(fig) + _labels_over_other_panels(fig)
        svg = figure_svg(fig)  # what the book shows (bbox_inches="tight")
    plt.close(fig)
    width_in = float(re.search(r'<svg\b[^>]*?\bwidth="([\d.]+)pt"', svg).group(1)) / 72
    font_pt = read_figure_record(svg)["min_font_pt"]
    px = smallest_text_px(font_pt, width_in)
    assert px >= MIN_TEXT_PX, (f"{name}: smallest text {font_pt} pt in a {width_in:.2f} in wide figure is "
                               f"{px:.1f} px in the {COLUMN_PX:.0f} px column")
    assert not overlaps, overlaps


@pytest.fixture
def frame_figures(monkeypatch):
    """Check every figure on its way to a frame: tick labels apart, nothing cut off at a fixed size."""
    problems: list[str] = []
    original = wframes.fig_to_png

    def checked(fig, **kw):
        problems.extend(_tick_label_overlaps(fig) + _labels_over_other_panels(fig))
        if not kw.get("tight", True):
            problems.extend(f"{text!r} is cut off by the frame's edge" for text in _cut_off_texts(fig))
        return original(fig, **kw)

    for module in WIDGET_MODULES:
        if hasattr(module, "fig_to_png"):
            monkeypatch.setattr(module, "fig_to_png", checked)
    return problems


@pytest.mark.parametrize("name", _params(FRAMES))
def test_explorer_frame_text_is_readable_in_the_column(name, frame_figures):
    with book_style():
        frames = FRAMES[name][1]()
    assert frames
    for i, data in enumerate(frames):
        record = read_figure_record(data)
        assert record and record.get("min_font_pt"), f"{name}: frame {i} has no font record"
        natural_px = Image.open(io.BytesIO(data)).size[0]  # shown at one image pixel per CSS px at most
        text_px = record["min_font_pt"] * record["dpi"] / 72 * min(1.0, COLUMN_PX / natural_px)
        assert text_px >= MIN_TEXT_PX, (f"{name}: frame {i}'s smallest text ({record['min_font_pt']} pt at "
                                        f"{record['dpi']:g} dpi) is {text_px:.1f} px in the {COLUMN_PX:.0f} px column")
    assert not frame_figures, frame_figures


@pytest.mark.ch03
def test_mask_explorer_prints_every_visible_weight_in_its_cell_at_the_book_text_size():
    """The chapter asks readers to check the printed weights: each one is drawn, at a readable size."""
    panels, original = [], wframes.fig_to_png

    def spy(fig, **kw):
        for ax in fig.axes[1::2]:  # each sequence's weights, right of its mask
            weights = ax.images[0].get_array()
            panels.append((int((weights > 0.005).sum()), [t.get_fontsize() for t in ax.texts]))
        return original(fig, **kw)

    with book_style(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(wattn, "fig_to_png", spy)
        wattn.mask_frames(SENTENCES)
        body = matplotlib.rcParams["font.size"]
    assert len(panels) == len(wattn.MASK_KINDS) * len(SENTENCES)
    for visible, sizes in panels:
        assert len(sizes) == visible  # one number per weight that is not (nearly) zero
        assert min(sizes) >= body  # at the book's text size in figures
