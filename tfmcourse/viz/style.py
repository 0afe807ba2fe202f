"""The book's figure style, set once: vector figures whose text stays readable in the page's column.

Every chapter calls :func:`use_book_style` in its set-up cell. From then on a figure shown by the
notebook is an SVG (sharp at any zoom and on any screen) that records in its ``<metadata>`` the
smallest font drawn in it (:func:`figure_svg`); frames rendered to PNG for kernel-free explorers
carry the same record as a PNG text chunk (:func:`figure_png`). The book's script
(``book/_static/tfmcourse-book.js``) reads the record and never lets a figure shrink below the width
at which that text is :data:`MIN_TEXT_PX` CSS px (on a phone the figure scrolls sideways inside its
output instead), and the browser test measures the same thing on every page.

Sizing a figure for the book: the text column is :data:`COLUMN_WIDTH_IN` inches wide at the
browser's 96 CSS px per inch. A figure at most that wide is shown at its natural size, where an
``f`` pt font is ``f * 4/3`` px; a wider one is scaled down by ``COLUMN_WIDTH_IN / width``, and its
smallest font must be larger by that factor to stay readable (:func:`smallest_text_px`).
"""
from __future__ import annotations

import io
import json
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import matplotlib as mpl
from matplotlib.figure import Figure
from matplotlib.text import Text

__all__ = ["BOOK_RC", "COLUMN_WIDTH_IN", "MIN_TEXT_PX", "METADATA_KEY", "use_book_style", "book_style",
           "min_font_pt", "smallest_text_px", "figure_svg", "figure_png", "read_figure_record"]

# Width of the book's text column (sphinx-book-theme, viewport >= 1200 px), in inches of 96 CSS px.
COLUMN_WIDTH_IN = 7.2
# The smallest text a figure may show once scaled into the page, in CSS px.
MIN_TEXT_PX = 9.0
# Names the record: JSON after this key in the SVG's <dc:description>, a PNG tEXt chunk's keyword.
METADATA_KEY = "tfmcourse-figure"

# 10 pt is the smallest text; it stays >= MIN_TEXT_PX in figures up to 10.6 in wide scaled into the
# column (10 * 4/3 * 7.2/10.6 = 9.05 px). Titles and labels a step larger, for hierarchy.
BOOK_RC: dict[str, Any] = {
    "font.size": 10.5,
    "axes.titlesize": 11.5,
    "axes.labelsize": 10.5,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "legend.fontsize": 10,
    "legend.title_fontsize": 10.5,
    "figure.titlesize": 12,
    "figure.dpi": 96,      # 1 figure inch = 96 CSS px, as in the browser
    "savefig.dpi": 192,    # PNGs at 2x: sharp on high-density screens
    # Glyphs drawn as paths: a figure looks the same on every device, whatever fonts it has.
    "svg.fonttype": "path",
    # Stable element ids: re-running a chapter gives the same SVG (clean diffs, cache hits).
    "svg.hashsalt": "tfmcourse",
}


def use_book_style(fmt: str = "svg") -> None:
    """Apply :data:`BOOK_RC` and, inside IPython, show every figure as ``fmt`` with its font record.

    Args:
        fmt: ``"svg"`` (the book's default) or ``"png"`` (2x PNG, for plots with very many marks).
    """
    if fmt not in ("svg", "png"):
        raise ValueError(f"fmt must be 'svg' or 'png', got {fmt!r}")
    ip = _ipython()
    if ip is not None and "matplotlib_inline" in str(mpl.rcParams._get("backend")):
        # matplotlib loads its backend lazily, and the inline backend registers its own (PNG) figure
        # formatter and rc when it loads: load it now, so that what follows is not undone later.
        import matplotlib_inline.backend_inline  # noqa: F401
    mpl.rcParams.update(BOOK_RC)
    if ip is None:  # plain Python: the rc is all there is to set
        return
    formatters = ip.display_formatter.formatters
    for mime in ("image/png", "image/jpeg", "image/svg+xml", "application/pdf"):
        formatters[mime].pop(Figure, None)  # one representation per figure: the one the book shows
    if fmt == "svg":
        formatters["image/svg+xml"].for_type(Figure, figure_svg)
    else:
        formatters["image/png"].for_type(Figure, figure_png)


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


@contextmanager
def book_style() -> Iterator[None]:
    """``with book_style(): ...`` draws with :data:`BOOK_RC` and restores the previous rc afterwards."""
    with mpl.rc_context(BOOK_RC):
        yield


@contextmanager
def _recording_fonts() -> Iterator[list[float]]:
    """Collect the size (pt) of every non-empty text that is drawn while the context is open."""
    sizes: list[float] = []
    original = Text.draw

    def draw(self, renderer):  # Annotation and every offsetbox text end up here too
        original(self, renderer)
        if self.get_visible() and self.get_text().strip() and self.get_alpha() != 0:
            sizes.append(float(self.get_fontsize()))

    Text.draw = draw
    try:
        yield sizes
    finally:
        Text.draw = original


def min_font_pt(fig: Figure) -> float:
    """Smallest font size (pt) of the text drawn in ``fig`` (tick labels included); ``inf`` if none."""
    with _recording_fonts() as sizes:
        fig.draw_without_rendering()
    return min(sizes, default=float("inf"))


def smallest_text_px(font_pt: float, width_in: float, column_in: float = COLUMN_WIDTH_IN) -> float:
    """CSS px of a ``font_pt`` font in a figure ``width_in`` inches wide, scaled into a ``column_in`` column."""
    return font_pt * 4 / 3 * min(1.0, column_in / width_in)


def _record(sizes: list[float], **extra: float) -> str:
    record = {"min_font_pt": round(min(sizes), 3) if sizes else None, **extra}
    return json.dumps(record, sort_keys=True)


def figure_svg(fig: Figure, *, tight: bool = True) -> str:
    """``fig`` as SVG text; ``<dc:description>`` holds ``METADATA_KEY {"min_font_pt": ...}``.

    The record is taken from the texts actually drawn into this SVG; with the SVG's own ``width`` (pt)
    it gives the size of the smallest text at any rendered width.
    """
    buf = io.StringIO()
    with _recording_fonts() as sizes:
        # Date=None: no timestamp, so the same figure gives the same file.
        fig.savefig(buf, format="svg", bbox_inches="tight" if tight else None,
                    metadata={"Date": None, "Description": "@RECORD@"})
    return buf.getvalue().replace("@RECORD@", f"{METADATA_KEY} {_record(sizes)}", 1)


def figure_png(fig: Figure, *, dpi: float | None = None, tight: bool = True, fmt: str = "png") -> bytes:
    """``fig`` as PNG (or JPEG) bytes carrying the record ``{"min_font_pt": ..., "dpi": ...}``.

    The record is a ``METADATA_KEY`` text chunk in a PNG, a comment segment (``METADATA_KEY {...}``)
    in a JPEG. The image's physical resolution is ``dpi`` too, so pixel width / dpi is its width in
    inches.

    Args:
        dpi: resolution (default: rc ``savefig.dpi``).
        tight: crop to the drawn content.
        fmt: ``"png"`` (plots) or ``"jpeg"`` (photographs: much smaller).
    """
    if fmt not in ("png", "jpeg"):
        raise ValueError(f"fmt must be 'png' or 'jpeg', got {fmt!r}")
    dpi = float(dpi or mpl.rcParams["savefig.dpi"])
    buf = io.BytesIO()
    with _recording_fonts() as sizes:
        fig.savefig(buf, format=fmt, dpi=dpi, bbox_inches="tight" if tight else None)
    record = _record(sizes, dpi=dpi)
    if fmt == "png":
        return _add_png_text(buf.getvalue(), METADATA_KEY, record)
    return _add_jpeg_comment(buf.getvalue(), f"{METADATA_KEY} {record}")


def _add_png_text(data: bytes, key: str, text: str) -> bytes:
    """Insert a tEXt chunk right after IHDR (readers that stop at the image data still see it)."""
    body = key.encode("latin-1") + b"\0" + text.encode("latin-1")
    chunk = len(body).to_bytes(4, "big") + b"tEXt" + body + zlib.crc32(b"tEXt" + body).to_bytes(4, "big")
    end_ihdr = 8 + 8 + 13 + 4  # signature, IHDR length+type, IHDR data, CRC
    return data[:end_ihdr] + chunk + data[end_ihdr:]


def _add_jpeg_comment(data: bytes, text: str) -> bytes:
    """Insert a COM segment right after the JPEG's start-of-image marker."""
    body = text.encode("latin-1")
    return data[:2] + b"\xff\xfe" + (len(body) + 2).to_bytes(2, "big") + body + data[2:]


def read_figure_record(data: bytes | str) -> dict[str, Any] | None:
    """The font record of an SVG (text or bytes), PNG or JPEG written here; ``None`` if it has none."""
    if isinstance(data, (bytes, bytearray)) and data[:8] == b"\x89PNG\r\n\x1a\n":
        pos = 8
        while pos + 8 <= len(data):
            length = int.from_bytes(data[pos:pos + 4], "big")
            kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
            if kind == b"tEXt" and body.startswith(METADATA_KEY.encode() + b"\0"):
                return json.loads(body.split(b"\0", 1)[1])
            if kind in (b"IDAT", b"IEND"):
                return None
            pos += 12 + length
        return None
    if isinstance(data, (bytes, bytearray)) and data[:2] == b"\xff\xd8":  # JPEG: the COM segments
        pos = 2
        while pos + 4 <= len(data) and data[pos] == 0xFF and data[pos + 1] not in (0xD9, 0xDA):
            length = int.from_bytes(data[pos + 2:pos + 4], "big")
            body = data[pos + 4:pos + 2 + length]
            if data[pos + 1] == 0xFE and body.startswith(METADATA_KEY.encode() + b" "):
                return json.loads(body[len(METADATA_KEY) + 1:])
            pos += 2 + length
        return None
    text = data.decode("utf-8", "replace") if isinstance(data, (bytes, bytearray)) else data
    m = re.search(re.escape(METADATA_KEY) + r" (\{[^<]*\})", text)
    return json.loads(m.group(1)) if m else None

