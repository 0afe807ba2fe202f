"""Open every page of the built book in headless Chromium, offline, and check that it renders.

For each HTML page of ``_build/html`` (the pages that ``_toc.yml`` names, plus any other built page
outside ``_static``/``_sources``/``vendor``, ``genindex`` and ``search``), with every request that is
not a ``file://`` URL blocked and counted as a failure:

* no console errors and no uncaught exceptions (except the allow-listed noise below);
* no request fails (a missing file shows up here too);
* every ``<img>`` loaded (``naturalWidth > 0``);
* every internal link (a relative ``href``) points to a file inside ``_build/html``, and its
  ``#anchor``, if any, exists on the target page;
* math is typeset: every Sphinx math node holds a MathJax 3 ``mjx-container``, no MathJax error
  (``mjx-merror``), and no raw ``\\(``, ``\\[`` or ``$$`` is left in the text;
* where the page has widget views, each is rendered from the saved widget state (no kernel).

A full-page screenshot of each page goes to ``_build/screenshots/<page>.png``.

The book must be built first (``make book``, or ``jupyter-book build .``): these tests skip when it
is not. They need Chromium at /usr/bin/chromium and the ``playwright`` package
(``tools/install_browser.sh``; never ``playwright install``). Set ``TFMCOURSE_REQUIRE_BROWSER=1``
(as ``make test`` does) to turn those skips into failures, and ``TFMCOURSE_BOOK_HTML`` to check
another build folder.
"""
from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit
from urllib.request import url2pathname

import pytest

pytestmark = pytest.mark.book

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("TFMCOURSE_BOOK_HTML", ROOT / "_build" / "html")).resolve()
SHOTS = HTML.parent / "screenshots"
TOC = ROOT / "_toc.yml"
CHROMIUM = os.environ.get("TFMCOURSE_CHROMIUM", "/usr/bin/chromium")
REQUIRE = os.environ.get("TFMCOURSE_REQUIRE_BROWSER", "") not in ("", "0")

# Built files that are not pages of the book.
NOT_PAGES = {"genindex.html", "search.html", "index.html"}  # index.html: JB's redirect (tested below)
NOT_PAGE_DIRS = {"_static", "_sources", "_images", "_downloads", "vendor"}

# Console errors that are known, harmless noise of the toolchain (see TOOLCHAIN.md). Anything else fails.
ALLOWED_CONSOLE_ERRORS = [
    # sphinx-book-theme loads sphinx-thebe's script twice; the second top-level `const THEBE_JS_URL`
    # throws. Thebe (live-kernel buttons) is not used by the static book, and nothing else breaks.
    re.compile(r"Identifier 'THEBE_JS_URL' has already been declared"),
    # pydata-sphinx-theme logs this as an error on a first visit (no light/dark mode stored in
    # localStorage yet) and then picks "auto" itself.
    re.compile(r"Got invalid theme mode"),
    # Not allow-listed: html-manager's MathJax 2 call `MathJax.Hub.Queue` ("reading 'Queue'"), which
    # book/_vendor/vendor/widgets-setup.js maps onto MathJax 3, so it must not come back.
]

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


def _page_params():
    if not (HTML / "index.html").is_file():
        return [pytest.param(None, id="book-not-built")]
    pages = _toc_docnames()
    pages += [p for p in _built_pages() if p not in pages]
    return [pytest.param(p, id=p) for p in pages]


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
    """One page opened offline, with every problem it reported while loading."""

    def __init__(self, browser, doc: str):
        self.doc = doc
        self.path = HTML / f"{doc}.html"
        self.url = self.path.as_uri()
        self.blocked: list[str] = []
        self.console_errors: list[str] = []
        self.failed_requests: list[str] = []
        self.context = browser.new_context(
            viewport={"width": 1280, "height": 900}, service_workers="block"
        )
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


def _open(browser, doc: str) -> PageRun:
    run = PageRun(browser, doc)
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
    n_views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
    if n_views:
        try:
            # html-manager renders each view into a div.widget-subarea inserted before its script.
            page.wait_for_function(
                """() => Array.from(document.querySelectorAll(
                        'script[type="application/vnd.jupyter.widget-view+json"]'))
                    .every(s => { const d = s.previousElementSibling;
                                  return d && d.classList.contains('widget-subarea')
                                         && d.querySelector('.jupyter-widgets'); })""",
                timeout=20_000,
            )
        except Exception:  # reported by the widget check below
            pass
    page.evaluate(
        """async () => {
            await document.fonts.ready;
            await Promise.all(Array.from(document.images).filter(i => !i.complete).map(
                i => new Promise(r => { i.addEventListener('load', r); i.addEventListener('error', r);
                                        setTimeout(r, 10000); })));
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
# The page checks

_PAGE_FACTS = """() => {
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
    return {
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
    };
}"""


@pytest.mark.parametrize("doc", _page_params())
def test_page_renders_offline(browser, doc):
    _require_built()
    if not (HTML / f"{doc}.html").is_file():
        pytest.fail(f"{doc} is in _toc.yml but {doc}.html was not built")
    run = _open(browser, doc)
    try:
        shot = SHOTS / f"{doc}.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        run.page.screenshot(path=str(shot), full_page=True)
        facts = run.page.evaluate(_PAGE_FACTS)
    finally:
        run.close()

    problems = [f"network request blocked (the book must work offline): {u}" for u in run.blocked]
    problems += [f"request failed: {r}" for r in run.failed_requests]
    problems += [
        f"console error: {e}"
        for e in run.console_errors
        if not any(p.search(e) for p in ALLOWED_CONSOLE_ERRORS)
    ]
    problems += [f"image not loaded: {i['src']}" for i in facts["images"] if not i["ok"]]
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
        pytest.fail(f"{doc}.html (screenshot: {shot}):\n  " + "\n  ".join(problems), pytrace=False)


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
    run = _open(browser, intro[0])
    try:
        page = run.page
        views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
        handle = page.locator(".widget-slider .noUi-handle").first
        if views == 0:
            pytest.skip("the intro has no widgets")
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
