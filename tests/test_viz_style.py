"""The book's figure style: vector output with a record of the smallest font, read back exactly."""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from tfmcourse.viz import style  # noqa: E402


def _figure(small: float = 7.0):
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1, 2], [1, 0, 2], label="curve")
    ax.set_title("title")
    ax.text(0.5, 0.5, "note", fontsize=small)
    ax.legend()
    return fig


def test_min_font_is_the_smallest_drawn_text():
    with style.book_style():
        fig = _figure(small=7.0)
        assert style.min_font_pt(fig) == 7.0
        fig.texts.clear()
        for t in fig.axes[0].texts:
            t.set_visible(False)  # a hidden text is not drawn, so it does not count
        assert style.min_font_pt(fig) == min(style.BOOK_RC["xtick.labelsize"], style.BOOK_RC["legend.fontsize"])


def test_use_book_style_shows_figures_as_svg_with_their_record_in_ipython():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        with matplotlib.rc_context():
            style.use_book_style()
            data, _ = shell.display_formatter.format(_figure(small=7.5))
        assert "image/svg+xml" in data and "image/png" not in data  # one representation: the SVG
        assert style.read_figure_record(data["image/svg+xml"]) == {"min_font_pt": 7.5}
    finally:
        InteractiveShell.clear_instance()


def test_svg_records_its_smallest_font_and_is_reproducible():
    with style.book_style():
        fig = _figure(small=6.5)
        svg = style.figure_svg(fig)
        assert svg == style.figure_svg(fig)  # no timestamp, stable ids
    assert style.read_figure_record(svg) == {"min_font_pt": 6.5}
    assert style.read_figure_record(svg.encode()) == {"min_font_pt": 6.5}
    assert "<text" not in svg  # glyphs are paths: the same look on every device


def test_png_records_font_and_dpi_and_stays_a_valid_png():
    fig = _figure(small=8.0)
    png = style.figure_png(fig, dpi=100)
    assert style.read_figure_record(png) == {"dpi": 100.0, "min_font_pt": 8.0}
    img = Image.open(io.BytesIO(png))
    img.load()  # the inserted chunk keeps the file valid (CRC checked by Pillow)
    assert img.info[style.METADATA_KEY]


def test_no_record_reads_as_none():
    buf = io.BytesIO()
    _figure().savefig(buf, format="png")
    assert style.read_figure_record(buf.getvalue()) is None
    assert style.read_figure_record("<svg></svg>") is None


def test_smallest_text_px_scales_wide_figures_only():
    assert style.smallest_text_px(9, width_in=4) == pytest.approx(12.0)
    assert style.smallest_text_px(10, width_in=2 * style.COLUMN_WIDTH_IN) == pytest.approx(10 * 4 / 3 / 2)


def test_book_rc_keeps_text_readable_in_a_column_wide_figure():
    smallest = min(v for k, v in style.BOOK_RC.items() if k.endswith("size") and isinstance(v, (int, float)))
    assert style.smallest_text_px(smallest, width_in=style.COLUMN_WIDTH_IN) >= style.MIN_TEXT_PX


def test_use_book_style_sets_rc_outside_ipython():
    with matplotlib.rc_context():
        style.use_book_style()
        assert matplotlib.rcParams["svg.fonttype"] == "path"
        assert matplotlib.rcParams["font.size"] == style.BOOK_RC["font.size"]
    with pytest.raises(ValueError):
        style.use_book_style("gif")


def test_jpeg_records_font_and_dpi_and_stays_a_valid_jpeg():
    jpeg = style.figure_png(_figure(small=7.25), dpi=90, fmt="jpeg")
    assert jpeg[:2] == b"\xff\xd8"
    assert style.read_figure_record(jpeg) == {"dpi": 90.0, "min_font_pt": 7.25}
    Image.open(io.BytesIO(jpeg)).load()
