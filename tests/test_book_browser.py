"""Open every page of the built book in headless Chromium, offline, at a phone, a tablet and a desktop
width (390, 1024 and 1440 px), and check what a reader gets.

For each HTML page of ``_build/html`` (the pages that ``_toc.yml`` names, plus any other built page
outside ``_static``/``_sources``/``vendor``, ``genindex`` and ``search``) and each width, with every
request that is not a ``file://`` URL blocked and counted as a failure:

* the console stays empty: no error, no uncaught exception, no failed request;
* the page never scrolls sideways (long code, wide figures and equations scroll inside their box);
* the chapter list and the page contents open from their buttons (the drawer on narrow screens,
  the collapsible sidebar on wide ones), and close again;
* every figure's smallest text is at least 9 CSS px as shown. Each figure records the smallest font
  it was drawn with (``tfmcourse.viz.style``: in the SVG's metadata, or in the PNG or JPEG of a widget
  frame); the test reads that record and the image's natural size and measures the rendered width.
  At 1024 and 1440 px the figure must also fit its column (no sideways scrolling needed);
* widget values (slider readouts, dropdown choices) are on screen, not cut off;
* math is typeset: every Sphinx math node holds a MathJax 3 ``mjx-container``, no MathJax error, and
  no raw ``\\(``, ``\\[`` or ``$$`` is left in the text;
* where the page has widget views, each is rendered from the saved widget state (no kernel);
* every ``<img>`` loaded, and (at one width) every internal link points to an existing file and
  anchor.

A full-page screenshot of each page at each width goes to ``_build/screenshots/<width>/<page>.png``.

Other checks of the built book: the launch buttons (Colab, Binder), the repository, issue and edit
links and the ``.ipynb`` download all point at the repository that ``_config.yml`` names.

The book must be built first (``make book``): these tests skip when it is not. They need Chromium at
/usr/bin/chromium and the ``playwright`` package (``tools/install_browser.sh``; never
``playwright install``). Set ``TFMCOURSE_REQUIRE_BROWSER=1`` (as ``make test`` does) to turn those
skips into failures, ``TFMCOURSE_BOOK_HTML`` to check another build folder and
``TFMCOURSE_CHROMIUM`` for another Chromium or Chrome.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit
from urllib.request import url2pathname

import pytest

from tfmcourse.viz.style import MIN_TEXT_PX, read_figure_record

pytestmark = pytest.mark.book

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("TFMCOURSE_BOOK_HTML", ROOT / "_build" / "html")).resolve()
SHOTS = HTML.parent / "screenshots"
TOC = ROOT / "_toc.yml"
CONFIG = ROOT / "_config.yml"
CHROMIUM = os.environ.get("TFMCOURSE_CHROMIUM", "/usr/bin/chromium")
REQUIRE = os.environ.get("TFMCOURSE_REQUIRE_BROWSER", "") not in ("", "0")

WIDTHS = (390, 1024, 1440)
DESKTOP = 1024  # from this width on, figures must fit the column
HEIGHT = 900

# Built files that are not pages of the book.
NOT_PAGES = {"genindex.html", "search.html", "index.html"}  # index.html: JB's redirect (tested below)
NOT_PAGE_DIRS = {"_static", "_sources", "_images", "_downloads", "vendor"}

LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")


# --------------------------------------------------------------------------------------------------
# Which pages


def _toc_docnames() -> list[str]:
    """Docnames (``book/intro``) that ``_toc.yml`` names, in order; ``url:`` entries are external."""
    if not TOC.is_file():
        return []
    import yaml

    out: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            for key in ("root", "file"):
                if isinstance(node.get(key), str):
                    out.append(re.sub(r"\.(md|ipynb|rst)$", "", node[key]))
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load(TOC.read_text()))
    return list(dict.fromkeys(out))


def _built_pages() -> list[str]:
    pages = []
    for path in sorted(HTML.rglob("*.html")):
        rel = path.relative_to(HTML)
        if rel.parts[0] in NOT_PAGE_DIRS or rel.as_posix() in NOT_PAGES:
            continue
        if any(part.startswith(".") for part in rel.parts):
            continue
        pages.append(rel.with_suffix("").as_posix())
    return pages


def _pages() -> list[str]:
    pages = _toc_docnames()
    return pages + [p for p in _built_pages() if p not in pages]


def _page_width_params():
    if not (HTML / "index.html").is_file():
        return [pytest.param(None, None, id="book-not-built")]
    return [pytest.param(p, w, id=f"{p}@{w}") for p in _pages() for w in WIDTHS]


def _unavailable(reason: str):
    if REQUIRE:
        pytest.fail(reason)
    pytest.skip(reason)


def _require_built():
    if not (HTML / "index.html").is_file():
        _unavailable(f"the book is not built ({HTML} missing): run `make book` first")


# --------------------------------------------------------------------------------------------------
# Browser


@pytest.fixture(scope="module")
def browser():
    _require_built()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the `playwright` package is missing: run tools/install_browser.sh")
    if not Path(CHROMIUM).exists():
        _unavailable(f"no Chromium at {CHROMIUM}: run tools/install_browser.sh")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


class PageRun:
    """One page opened offline at one width, with every problem it reported while loading."""

    def __init__(self, browser, doc: str, width: int):
        self.doc = doc
        self.width = width
        self.path = HTML / f"{doc}.html"
        self.url = self.path.as_uri()
        self.blocked: list[str] = []
        self.console_errors: list[str] = []
        self.failed_requests: list[str] = []
        self.context = browser.new_context(viewport={"width": width, "height": HEIGHT},
                                           service_workers="block")
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.page.route("**/*", self._route)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda err: self.console_errors.append(f"uncaught: {err}"))
        self.page.on("requestfailed", self._request_failed)

    def _route(self, route):
        url = route.request.url
        if url.startswith(LOCAL_SCHEMES):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("blockedbyclient")

    def _console(self, msg):
        if msg.type != "error":
            return
        if msg.text.startswith("Failed to load resource"):
            return  # reported with its URL by _request_failed
        where = msg.location.get("url", "") if msg.location else ""
        self.console_errors.append(f"{msg.text} ({where})" if where else msg.text)

    def _request_failed(self, request):
        if request.url in self.blocked:
            return
        self.failed_requests.append(f"{request.url}: {request.failure}")

    def close(self):
        self.context.close()


_WIDGETS_RENDERED = """() => Array.from(document.querySelectorAll(
        'script[type="application/vnd.jupyter.widget-view+json"]'))
    .every(s => { const d = s.previousElementSibling;
                  return d && d.classList.contains('widget-subarea') && d.querySelector('.jupyter-widgets'); })"""


def _open(browser, doc: str, width: int = 1440) -> PageRun:
    run = PageRun(browser, doc, width)
    page = run.page
    page.goto(run.url, wait_until="load")
    # MathJax 3 typesets after its startup promise; fonts and images may still be on their way.
    page.evaluate(
        """async () => {
            if (window.MathJax && window.MathJax.startup && window.MathJax.startup.promise) {
                await window.MathJax.startup.promise;
            }
        }"""
    )
    if page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count():
        try:  # html-manager renders each view into a div.widget-subarea inserted before its script
            page.wait_for_function(_WIDGETS_RENDERED, timeout=20_000)
        except Exception:  # reported by the widget check
            pass
    page.evaluate(
        """async () => {
            await document.fonts.ready;
            await Promise.all(Array.from(document.images).filter(i => !i.complete).map(
                i => new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r);
                                        setTimeout(r, 10000); })));
            // Let layout settle (the book's script sizes figures once their images are known).
            await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
        }"""
    )
    return run


# --------------------------------------------------------------------------------------------------
# Links


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value and (name == "id" or (tag == "a" and name == "name")):
                self.ids.add(value)


_IDS_CACHE: dict[Path, set[str]] = {}


def _ids_of(path: Path) -> set[str]:
    if path not in _IDS_CACHE:
        parser = _Ids()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        _IDS_CACHE[path] = parser.ids
    return _IDS_CACHE[path]


def _link_problems(run: PageRun, hrefs: list[str], live_ids: set[str]) -> list[str]:
    problems = []
    root = HTML.resolve()
    for href in sorted(set(hrefs)):
        parts = urlsplit(href)
        if parts.scheme or href.startswith("//") or href in ("", "#"):
            continue  # external (not reachable offline by design) or a no-op anchor
        target_url = urljoin(run.url, href)
        target = Path(url2pathname(urlsplit(target_url).path)).resolve()
        if target != root and root not in target.parents:
            problems.append(f"link {href!r} leaves _build/html")
            continue
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            problems.append(f"link {href!r}: {target.relative_to(root)} does not exist")
            continue
        anchor = unquote(parts.fragment)
        if anchor and target.suffix == ".html":
            ids = _ids_of(target) | (live_ids if target == run.path.resolve() else set())
            if anchor not in ids:
                problems.append(f"link {href!r}: no #{anchor} on {target.relative_to(root)}")
    return problems


# --------------------------------------------------------------------------------------------------
# What the page shows

_PAGE_FACTS = """async () => {
    const skip = 'pre, code, script, style, textarea, mjx-container, .highlight, .math';  // .math: reported as untypeset
    const article = document.querySelector('article') || document.body;
    const raw = [];
    const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        if (n.parentElement && n.parentElement.closest(skip)) continue;
        const m = n.textContent.match(/\\\\\\(|\\\\\\[|\\$\\$/);
        if (m) raw.push(n.textContent.trim().slice(0, 80));
    }
    const mathNodes = Array.from(document.querySelectorAll('span.math, div.math'));
    const views = Array.from(document.querySelectorAll(
        'script[type="application/vnd.jupyter.widget-view+json"]'));
    const rendered = views.filter(s => { const d = s.previousElementSibling;
        return d && d.classList.contains('widget-subarea') && d.querySelector('.jupyter-widgets'); });
    const shown = e => e.checkVisibility({checkOpacity: true, checkVisibilityCSS: true})
                       && e.getBoundingClientRect().width > 0;

    // The font record of a widget frame (written by tfmcourse.viz.style): a tEXt chunk of its PNG,
    // or a comment segment of its JPEG.
    const latin1 = b => String.fromCharCode(...b);
    async function imageRecord(url) {
        try {
            const d = new Uint8Array(await (await fetch(url)).arrayBuffer());
            if (latin1(d.subarray(1, 4)) === 'PNG') {
                for (let pos = 8; pos + 8 <= d.length;) {
                    const len = new DataView(d.buffer, pos, 4).getUint32(0);
                    const type = latin1(d.subarray(pos + 4, pos + 8));
                    if (type === 'tEXt') {
                        const body = d.subarray(pos + 8, pos + 8 + len), nul = body.indexOf(0);
                        if (latin1(body.subarray(0, nul)) === 'tfmcourse-figure')
                            return JSON.parse(latin1(body.subarray(nul + 1)));
                    }
                    if (type === 'IDAT' || type === 'IEND') return null;
                    pos += 12 + len;
                }
            } else if (d[0] === 0xff && d[1] === 0xd8) {
                for (let pos = 2; pos + 4 <= d.length && d[pos] === 0xff && d[pos + 1] !== 0xda;) {
                    const len = (d[pos + 2] << 8) | d[pos + 3];
                    const text = latin1(d.subarray(pos + 4, pos + 2 + len));
                    if (d[pos + 1] === 0xfe && text.startsWith('tfmcourse-figure '))
                        return JSON.parse(text.slice('tfmcourse-figure '.length));
                    pos += 2 + len;
                }
            }
        } catch (e) { return {error: String(e)}; }
        return null;
    }
    const figures = [];
    for (const img of article.querySelectorAll('img')) {
        const box = img.closest('.widget-subarea') || img.closest('.cell_output');
        if (!box) continue;  // not a code cell's output
        const r = img.getBoundingClientRect();
        figures.push({
            src: img.getAttribute('src') || '', blob: img.src.startsWith('blob:'),
            record: img.src.startsWith('blob:') ? await imageRecord(img.src) : null,
            natural: img.naturalWidth, width: r.width, shown: shown(img),
            boxWidth: box.clientWidth,
        });
    }
    const values = Array.from(article.querySelectorAll(
            '.widget-readout, .widget-dropdown select, .widget-toggle-buttons button'))
        .filter(shown).map(e => {
            const r = e.getBoundingClientRect();
            const box = (e.closest('.widget-subarea') || article).getBoundingClientRect();
            return {text: String(e.value !== undefined && e.tagName === 'SELECT'
                                 ? e.options[e.selectedIndex]?.text : e.textContent).trim().slice(0, 40),
                    left: r.left, right: r.right, width: r.width,
                    limitLeft: Math.max(0, box.left), limitRight: Math.min(window.innerWidth, box.right)};
        });
    return {
        pageWidth: Math.max(document.documentElement.scrollWidth, document.body.scrollWidth),
        viewport: window.innerWidth,
        images: Array.from(document.images).map(i => ({src: i.getAttribute('src') || '',
                                                      ok: i.complete && i.naturalWidth > 0})),
        hrefs: Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href')),
        ids: Array.from(document.querySelectorAll('[id]')).map(e => e.id),
        mathNodes: mathNodes.length,
        untypeset: mathNodes.filter(e => !e.querySelector('mjx-container'))
                            .map(e => e.textContent.trim().slice(0, 80)),
        mjx: document.querySelectorAll('mjx-container').length,
        mathErrors: Array.from(document.querySelectorAll('mjx-merror'))
                         .map(e => (e.getAttribute('data-mjx-error') || e.textContent).slice(0, 80)),
        raw: raw,
        views: views.length,
        rendered: rendered.length,
        widgetElements: document.querySelectorAll('.jupyter-widgets').length,
        widgetErrors: Array.from(document.querySelectorAll('.widget-subarea'))
            .map(d => d.innerText).filter(t => /Error displaying widget|Failed to load/.test(t))
            .map(t => t.slice(0, 120)),
        figures: figures,
        values: values,
    };
}"""


def _figure_text_px(run: PageRun, fig: dict) -> tuple[float | None, str]:
    """CSS px of the figure's smallest text as rendered, or (None, why it cannot be measured)."""
    if fig["blob"]:
        record, natural_css = fig["record"], fig["natural"]
        if not record or "min_font_pt" not in record:
            return None, f"widget image without a font record ({record})"
        text_natural = record["min_font_pt"] * record.get("dpi", 72) / 72
    else:
        path = Path(url2pathname(urlsplit(urljoin(run.url, fig["src"])).path))
        data = path.read_bytes() if path.is_file() else b""
        record = read_figure_record(data)
        if not record or record.get("min_font_pt") is None:
            return None, (f"{fig['src']}: no font record (show figures with "
                          "tfmcourse.viz.style.use_book_style())")
        if path.suffix.lower() == ".svg":
            m = re.search(rb'<svg\b[^>]*?\bwidth="([\d.]+)pt"', data)
            if not m:
                return None, f"{fig['src']}: SVG without a width in pt"
            width_pt = float(m.group(1))
            natural_css = width_pt * 4 / 3  # 1 pt = 4/3 CSS px
            text_natural = record["min_font_pt"] * 4 / 3
        else:
            natural_css = fig["natural"]  # one image pixel per CSS px
            text_natural = record["min_font_pt"] * record.get("dpi", 72) / 72
    if record["min_font_pt"] in (None, float("inf")):
        return float("inf"), ""
    return text_natural * fig["width"] / natural_css, ""


def _figure_problems(run: PageRun, figures: list[dict]) -> list[str]:
    problems = []
    for fig in figures:
        if not fig["shown"]:
            continue  # a frame the explorer does not show now, or a folded output
        px, why = _figure_text_px(run, fig)
        name = "widget frame" if fig["blob"] else fig["src"].rsplit("/", 1)[-1]
        if px is None:
            problems.append(f"figure {name}: {why}")
            continue
        if px < MIN_TEXT_PX - 0.05:
            problems.append(f"figure {name}: smallest text {px:.1f} px at {fig['width']:.0f} px wide "
                            f"(needs {MIN_TEXT_PX:g} px)")
        if run.width >= DESKTOP and fig["width"] > fig["boxWidth"] + 1:
            problems.append(f"figure {name}: {fig['width']:.0f} px wide in a {fig['boxWidth']} px column: "
                            "too small text for the column (draw it narrower or with larger fonts)")
    return problems


# --------------------------------------------------------------------------------------------------
# Sidebars

_VISIBLE = """sel => Array.from(document.querySelectorAll(sel)).some(e => {
    const r = e.getBoundingClientRect();
    return e.checkVisibility({checkOpacity: true, checkVisibilityCSS: true}) && r.width > 0 && r.height > 0
        && r.right > 0 && r.left < window.innerWidth && r.bottom > 0 && r.top < window.innerHeight;
})"""

CHAPTER_LINKS = ".bd-docs-nav a.reference"
PAGE_LINKS = "#pst-page-toc-nav a"


def _visible_button(page, selector: str):
    for i in range(page.locator(selector).count()):
        button = page.locator(selector).nth(i)
        if button.is_visible():
            return button
    return None


def _toggle_problems(run: PageRun) -> list[str]:
    page, problems = run.page, []

    def wait_visible(selector: str, visible: bool) -> bool:
        try:
            page.wait_for_function(f"({_VISIBLE})({json.dumps(selector)}) === {json.dumps(visible)}",
                                   timeout=3_000)
            return True
        except Exception:
            return False

    def close_drawer():
        page.keyboard.press("Escape")
        page.wait_for_function("() => !document.querySelector('dialog[open]')", timeout=3_000)

    # The chapter list: a drawer on narrow screens, a sidebar that collapses on wide ones.
    button = _visible_button(page, ".primary-toggle")
    if button is None:
        problems.append("no visible button for the chapter list")
    else:
        shown = page.evaluate(_VISIBLE, CHAPTER_LINKS)
        button.click()
        if not wait_visible(CHAPTER_LINKS, not shown):
            problems.append(f"the chapter-list button did nothing (links {'stayed' if shown else 'stayed hidden'})")
        elif shown:  # it collapsed the sidebar: it must bring it back
            button.click()
            if not wait_visible(CHAPTER_LINKS, True):
                problems.append("the chapter-list button hid the sidebar but did not bring it back")
        else:
            close_drawer()
            if not wait_visible(CHAPTER_LINKS, False):
                problems.append("the chapter-list drawer does not close with Escape")

    # The page contents: beside the text on wide screens, a drawer otherwise.
    if page.locator(PAGE_LINKS).count() and not page.evaluate(_VISIBLE, PAGE_LINKS):
        button = _visible_button(page, ".secondary-toggle")
        if button is None:
            problems.append("the page contents are hidden and no button shows them")
        else:
            button.click()
            if not wait_visible(PAGE_LINKS, True):
                problems.append("the page-contents button did nothing")
            else:
                close_drawer()
    return problems


# --------------------------------------------------------------------------------------------------
# The page checks


@pytest.mark.parametrize("doc, width", _page_width_params())
def test_page_at_width(browser, doc, width):
    _require_built()
    if not (HTML / f"{doc}.html").is_file():
        pytest.fail(f"{doc} is in _toc.yml but {doc}.html was not built")
    run = _open(browser, doc, width)
    shot = SHOTS / str(width) / f"{doc}.png"
    try:
        shot.parent.mkdir(parents=True, exist_ok=True)
        run.page.screenshot(path=str(shot), full_page=True)
        facts = run.page.evaluate(_PAGE_FACTS)
        toggles = _toggle_problems(run)
    finally:
        run.close()

    problems = [f"network request blocked (the book must work offline): {u}" for u in run.blocked]
    problems += [f"request failed: {r}" for r in run.failed_requests]
    problems += [f"console error: {e}" for e in run.console_errors]
    if facts["pageWidth"] > facts["viewport"] + 1:
        problems.append(f"the page scrolls sideways: {facts['pageWidth']} px wide in a {facts['viewport']} px window")
    problems += toggles
    problems += [f"image not loaded: {i['src']}" for i in facts["images"] if not i["ok"]]
    problems += _figure_problems(run, facts["figures"])
    for v in facts["values"]:
        if not v["text"] or v["width"] <= 0 or v["right"] > v["limitRight"] + 1 or v["left"] < v["limitLeft"] - 1:
            problems.append(f"widget value {v['text']!r} is cut off or off screen "
                            f"({v['left']:.0f}-{v['right']:.0f} px, visible {v['limitLeft']:.0f}-{v['limitRight']:.0f})")
    if width == WIDTHS[-1]:  # the links are the same at every width
        problems += _link_problems(run, facts["hrefs"], set(facts["ids"]))
    if facts["mathNodes"] or facts["raw"]:
        if facts["mjx"] == 0:
            problems.append("the page has math but MathJax typeset nothing (no mjx-container)")
        problems += [f"math not typeset: {t!r}" for t in facts["untypeset"]]
        problems += [f"MathJax error: {t!r}" for t in facts["mathErrors"]]
        problems += [f"raw TeX delimiters left in the text: {t!r}" for t in facts["raw"]]
    if facts["views"]:
        if facts["rendered"] < facts["views"] or facts["widgetElements"] == 0:
            problems.append(
                f"widgets not rendered: {facts['rendered']} of {facts['views']} widget views "
                "(is the widget state saved in the notebook metadata and the html-manager loaded?)"
            )
        problems += [f"widget error: {t!r}" for t in facts["widgetErrors"]]

    if problems:
        pytest.fail(f"{doc}.html at {width} px (screenshot: {shot}):\n  " + "\n  ".join(problems),
                    pytrace=False)


def test_index_redirects_into_the_book():
    _require_built()
    text = (HTML / "index.html").read_text(encoding="utf-8")
    m = re.search(r'http-equiv="Refresh" content="0; url=([^"]+)"', text, re.IGNORECASE)
    if m is None:
        return  # a real index page: it is checked with the others if the toc names it
    target = HTML / unquote(urlsplit(m.group(1)).path)
    assert target.is_file(), f"index.html redirects to {m.group(1)}, which does not exist"


def test_intro_widgets_work_without_a_kernel(browser):
    """The intro's slider is jslink-ed to a stack of precomputed frames: moving it must change the
    frame in the static page, with no kernel behind it."""
    intro = _toc_docnames()[:1]
    if not intro or not (HTML / f"{intro[0]}.html").is_file():
        pytest.skip("no built root page")
    run = _open(browser, intro[0], WIDTHS[0])  # on a phone, where the slider is narrowest
    try:
        page = run.page
        views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
        if views == 0:
            pytest.skip("the intro has no widgets")
        handle = page.locator(".widget-slider .noUi-handle").first
        assert page.locator(".widget-slider .noUi-handle").count(), "no slider widget rendered"
        area = page.locator(".widget-subarea").first
        before = area.inner_text()
        handle.focus()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(
            "t => document.querySelector('.widget-subarea').innerText !== t", arg=before,
            timeout=5_000,
        )
        assert area.inner_text() != before
    finally:
        run.close()


# --------------------------------------------------------------------------------------------------
# Links to the repository and the notebooks


def _config() -> dict:
    import yaml

    return yaml.safe_load(CONFIG.read_text(encoding="utf-8"))


def _hrefs(doc: str) -> list[str]:
    class Hrefs(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.hrefs: list[str] = []

        def handle_starttag(self, tag, attrs):
            href = dict(attrs).get("href")
            if tag == "a" and href:
                self.hrefs.append(href)

    parser = Hrefs()
    parser.feed((HTML / f"{doc}.html").read_text(encoding="utf-8"))
    return parser.hrefs


def _notebook_pages() -> list[tuple[str, str]]:
    """(docname, source suffix) of the pages that are notebooks (MyST Markdown or .ipynb)."""
    out = []
    for doc in _toc_docnames():
        md, ipynb = ROOT / f"{doc}.md", ROOT / f"{doc}.ipynb"
        if ipynb.is_file():
            out.append((doc, ".ipynb"))
        elif md.is_file() and md.read_text(encoding="utf-8").startswith("---\njupytext:"):
            out.append((doc, ".md"))
    return out


def test_launch_buttons_and_repository_links_use_the_configured_repository():
    _require_built()
    cfg = _config()
    url = cfg["repository"]["url"].rstrip("/")
    branch = cfg["repository"].get("branch", "main")
    nb_branch = cfg["sphinx"]["config"]["tfm_notebooks_branch"]
    org_repo = urlsplit(url).path.strip("/")
    colab = cfg["launch_buttons"]["colab_url"].rstrip("/")
    binder = cfg["launch_buttons"]["binderhub_url"].rstrip("/")
    pages = _notebook_pages()
    assert pages, "no notebook pages in _toc.yml"
    problems = []
    for doc, suffix in pages:
        hrefs = set(_hrefs(doc))
        # A chapter written in Markdown opens as the notebook the deploy workflow publishes.
        ref, path = (nb_branch, f"{doc}.ipynb") if suffix == ".md" else (branch, f"{doc}.ipynb")
        expected = {
            "Colab": f"{colab}/github/{org_repo}/blob/{ref}/{path}",
            "Binder": f"{binder}/v2/gh/{org_repo}/{ref}?urlpath=lab/tree/{path}",
            "repository": url,
            "issues": f"{url}/issues/new",  # with the page named in the title
            "edit": f"{url}/edit/{branch}/{doc}{suffix}",
        }
        for what, link in expected.items():
            if link not in hrefs and not any(h.startswith(link + "?") for h in hrefs):
                near = sorted(h for h in hrefs if h.startswith(("https://github", colab, binder)))
                problems.append(f"{doc}: no {what} link {link} (links: {near})")
        download = f"_sources/{doc}.ipynb"
        if not any(h.endswith(download) for h in hrefs):
            problems.append(f"{doc}: no .ipynb download")
        elif not (HTML / download).is_file():
            problems.append(f"{doc}: the .ipynb download {download} was not built")
        else:
            nb = json.loads((HTML / download).read_text(encoding="utf-8"))
            if suffix == ".md" and not any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"):
                problems.append(f"{doc}: the downloaded notebook has no outputs")
    assert not problems, "\n".join(problems)


def test_chapter_notebooks_for_colab_install_the_package_from_the_configured_repository(tmp_path):
    _require_built()
    url = _config()["repository"]["url"].rstrip("/")
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "book_notebooks.py"), "--html", str(HTML),
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    chapters = [doc for doc, suffix in _notebook_pages() if suffix == ".md"]
    for doc in chapters:
        nb = json.loads((tmp_path / f"{doc}.ipynb").read_text(encoding="utf-8"))
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        setup = "".join(code[0]["source"])
        assert f"git+{url}@" in setup and "%pip install" in setup, setup
        assert sum("tfmcourse-colab-setup" in c["metadata"].get("tags", []) for c in nb["cells"]) == 1
        assert any(c.get("outputs") for c in code[1:]), f"{doc}: the chapter's outputs are kept"


def test_no_page_loads_the_unused_live_code_scripts():
    """The book offers no Thebe (live code): none of its scripts or config may be on a page (they
    threw "THEBE_JS_URL has already been declared" on every page)."""
    _require_built()
    offenders = [p for p in _pages() if (HTML / f"{p}.html").is_file()
                 and re.search(r"<script[^>]*>[^<]*THEBE|sphinx-thebe|x-thebe-config",
                               (HTML / f"{p}.html").read_text(encoding="utf-8"))]
    assert not offenders, f"Thebe scripts on {offenders}"
