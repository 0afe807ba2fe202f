"""Sphinx glue for the tfmcourse book (loaded from ``_config.yml``: ``sphinx.local_extensions``).

* Launch buttons open notebooks. Jupyter Book points Colab and Binder at a chapter's source, which
  is MyST Markdown (``book/ch03_qkv.md``) that Colab cannot open. The deploy workflow publishes the
  executed chapters as ``.ipynb`` on the branch ``tfm_notebooks_branch``
  (``tools/book_notebooks.py``), and this extension points the Colab and Binder buttons there. The
  repository itself comes from ``repository.url`` in ``_config.yml``, as for every other link.
* Figures never shrink into unreadable text. Each figure drawn with ``tfmcourse.viz.style`` records
  the smallest font in it; the ``<img>`` gets ``data-tfm-text-px``: the CSS px of that text when
  the image is shown at its natural size. ``book/_static/tfmcourse-book.js`` then keeps the image
  wide enough for that text to be at least 9 px (the output scrolls sideways on a narrow screen).
* Downloaded notebooks keep their outputs. On a cache hit, myst-nb 1.4 merges the cached outputs
  into a copy of the notebook and then writes the original, without outputs, to
  ``_build/jupyter_execute``, from which the page's ``.ipynb`` download is made. The merge is done
  in place here instead (tests/test_book_browser.py checks that every download has outputs).
* No live-code (Thebe) scripts: the book does not offer Thebe, and sphinx-thebe's inline script is
  added twice by Jupyter Book 1, which throws "THEBE_JS_URL has already been declared" on every page.
"""
from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx

# The figure record is written by tfmcourse.viz.style (the book's code cells import tfmcourse too).
from tfmcourse.viz.style import read_figure_record

_IMG = re.compile(r'<img\b[^>]*?\bsrc="([^"]+)"[^>]*?/?>')
_TEXT_PX: dict[str, float | None] = {}


def _text_px_at_natural_size(path: Path) -> float | None:
    """CSS px of the smallest text of the figure at ``path`` shown at its natural size, if recorded."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    record = read_figure_record(data)
    if not record or record.get("min_font_pt") is None:
        return None
    font_pt = float(record["min_font_pt"])
    if path.suffix.lower() == ".svg":
        return font_pt * 4 / 3  # matplotlib's SVG user unit is the pt; a browser draws 1 pt = 4/3 px
    dpi = float(record.get("dpi", 72.0))
    return font_pt * dpi / 72  # one image pixel is one CSS px at natural size


def _annotate_figures(app: Sphinx, context: dict[str, Any]) -> None:
    body = context.get("body")
    images = getattr(app.builder, "images", {})  # source path -> name under _images/
    if not body or not images:
        return
    by_name = {name: src for src, name in images.items()}
    cache = _TEXT_PX  # image names are content hashes: a name always means the same figure

    def add_attr(m: re.Match) -> str:
        tag, src = m.group(0), html.unescape(m.group(1))
        name = src.rsplit("/", 1)[-1]
        if name not in by_name or "data-tfm-text-px" in tag:
            return tag
        if name not in cache:
            cache[name] = _text_px_at_natural_size(Path(app.srcdir, by_name[name]))
        px = cache[name]
        if px is None:
            return tag
        return tag.replace("<img ", f'<img data-tfm-text-px="{px:.3f}" ', 1)

    context["body"] = _IMG.sub(add_attr, body)


def _notebook_launch_urls(app: Sphinx, context: dict[str, Any]) -> None:
    """Point Colab/Binder buttons at ``<page>.ipynb`` on the notebooks branch."""
    opts = app.config.html_theme_options
    branch = opts.get("repository_branch", "main")
    nb_branch = app.config.tfm_notebooks_branch
    source = app.env.doc2path(context["pagename"], base=False)
    if not str(source).endswith(".md"):
        return  # a real .ipynb in the repository: the default links are right
    rel_md = str(Path(opts.get("path_to_docs", "") or ".", source).as_posix()).lstrip("./")
    rel_ipynb = rel_md[: -len(".md")] + ".ipynb"
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            url = button.get("url", "")
            if "colab" in button.get("text", "").lower():
                url = url.replace(f"/blob/{branch}/{rel_md}", f"/blob/{nb_branch}/{rel_ipynb}")
            elif "binder" in button.get("text", "").lower():
                url = url.replace(f"/{branch}?urlpath=", f"/{nb_branch}?urlpath=")
                url = url.replace(f"/tree/{rel_md}", f"/tree/{rel_ipynb}")
            button["url"] = url


_THEBE_CONFIG = re.compile(r'<script type="text/x-thebe-config">.*?</script>\s*', re.DOTALL)


def _drop_thebe(context: dict[str, Any]) -> None:
    def is_thebe(asset) -> bool:
        name = str(getattr(asset, "filename", asset) or "")
        body = getattr(asset, "attributes", {}).get("body", "")
        return "thebe" in name or "THEBE_JS_URL" in body

    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [a for a in context[key] if not is_thebe(a)]
    if context.get("body"):
        context["body"] = _THEBE_CONFIG.sub("", context["body"])


def _page_context(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    _drop_thebe(context)
    if doctree is None:
        return
    _annotate_figures(app, context)
    _notebook_launch_urls(app, context)


def _merge_cached_outputs_in_place() -> None:
    from myst_nb.core.execute.cache import NotebookClientCache

    start_client = NotebookClientCache.start_client
    if getattr(start_client, "_tfmcourse", False):
        return

    def start_client_in_place(self):
        notebook = self._notebook  # the object myst-nb will write to jupyter_execute/
        start_client(self)
        if self._notebook is not notebook:  # a cache hit: outputs merged into a copy
            notebook.clear()
            notebook.update(self._notebook)
            self._notebook = notebook

    start_client_in_place._tfmcourse = True
    NotebookClientCache.start_client = start_client_in_place


def setup(app: Sphinx) -> dict[str, Any]:
    _merge_cached_outputs_in_place()
    app.add_config_value("tfm_notebooks_branch", "notebooks", "html")
    # After sphinx-book-theme has built its header buttons (priority 501 and below).
    app.connect("html-page-context", _page_context, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}

