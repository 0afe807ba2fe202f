"""The student release's notebooks: links into the book, the hosted-runtime bootstrap, filled answers.

In the repository an exercise notebook links to the book's *sources* (``../book/ch03_qkv.md``), which
Jupyter Book turns into pages when it renders ``exercises/`` read-only. A student has no ``book/``
folder of sources, so :func:`release_notebook` points every such link at a page of the built book:
the copy bundled in the release (``../book/book/ch03_qkv.html``) or a published one
(``https://…/book/ch03_qkv.html``). Section references written as ``(Book: *Masks: who may attend to
whom*)`` become links to that section's anchor. With no book at all the links turn into plain text.

The same module inserts the bootstrap cell that installs the course package on a hosted runtime
(Google Colab), and fills an exercise notebook with the instructor's answers (the released solution
notebooks, and the tests that run a release as a student would).
"""
from __future__ import annotations

import copy
import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BookLinks", "book_anchors", "release_notebook", "bootstrap_source", "fill_answers", "check_links",
           "read_notebook", "write_notebook", "BOOTSTRAP_ID"]

BOOTSTRAP_ID = "hosted-bootstrap"
_LINK = re.compile(r"\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)\)")
_BOOK_REF = re.compile(r"\((?P<lead>[Bb]ook:\s*)(?P<body>[^()]*)\)")
_REF_PART = re.compile(r"[Cc]hapter (?P<n>\d+)|\*(?P<title>[^*]+)\*")
_FENCE = re.compile(r"^\s*(`{3,}|~{3,}|:{3,})")
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def _norm(text: str) -> str:
    """Letters and digits only, lower case: ``Why divide by $\\sqrt{d_k}$`` -> ``whydividebysqrtdk``."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _plain(markdown: str) -> str:
    """The text docutils sees in a MyST heading: no ``$``, backticks, emphasis or link targets."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    return re.sub(r"[`$*]|(?<!\w)_|_(?!\w)", "", text)


def _make_id(text: str) -> str:
    """The section id Sphinx gives a heading (``docutils.nodes.make_id``), written out for releases without docutils."""
    try:
        from docutils.nodes import make_id
        return make_id(text)
    except ImportError:
        ascii_ = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
        return re.sub(r"^[-0-9]+|-+$", "", re.sub(r"[^a-z0-9]+", "-", ascii_))


def book_anchors(book_sources: Path) -> dict[str, dict[str, str]]:
    """``{"book/ch03_qkv": {normalised heading: section id}}`` from the MyST sources in ``book_sources``."""
    pages: dict[str, dict[str, str]] = {}
    for path in sorted(Path(book_sources).glob("*.md")):
        anchors: dict[str, str] = {}
        seen: set[str] = set()
        fence = None
        for line in path.read_text(encoding="utf-8").splitlines():
            m = _FENCE.match(line)
            if m:  # code cells hold "# comment" lines that are not headings
                mark = m.group(1)
                fence = None if fence and mark.startswith(fence) else (fence or mark)
                continue
            h = None if fence else _HEADING.match(line)
            if h:
                text = _plain(h.group(2))
                ident = _make_id(text)
                if ident and ident not in seen:  # a repeated title gets an id Sphinx numbers: leave it out
                    anchors.setdefault(_norm(text), ident)
                    seen.add(ident)
        pages[f"{path.parent.name}/{path.stem}"] = anchors
    return pages


@dataclass(frozen=True)
class BookLinks:
    """Where a released notebook finds the book.

    Args:
        base: a URL ending in ``/``, a folder relative to ``exercises/`` (``"../book/"`` for the
            bundled copy), or ``None`` (no book: links become plain text).
        anchors: section ids per page, from :func:`book_anchors`.
        where: the bundled copy's folder as seen from the course folder (``"book/"``), for messages
            printed outside a notebook, where a relative ``base`` means nothing.
    """

    base: str | None
    anchors: dict[str, dict[str, str]] = field(default_factory=dict)
    where: str = ""

    def page(self, page: str, anchor: str = "") -> str | None:
        """Link to ``page`` (``"book/ch03_qkv"``) and an optional ``#anchor``; ``None`` without a book."""
        if self.base is None or page not in self.anchors:
            return None
        return f"{self.base}{page}.html" + (f"#{anchor}" if anchor else "")

    def section(self, page: str, title: str) -> str | None:
        """Link to the section of ``page`` titled ``title`` (compared without markup); ``None`` if unknown."""
        ident = self.anchors.get(page, {}).get(_norm(_plain(title)))
        return self.page(page, ident) if ident else None

    def hint(self, page: str) -> str:
        """Where a student reads ``page``, for messages printed outside a notebook."""
        if self.base is None or page not in self.anchors:
            return ""
        return self.page(page) if "://" in self.base else f"{self.where}{page}.html in the course folder"


def _rewrite_links(text: str, links: BookLinks, problems: list[str]) -> str:
    def repl(m: re.Match) -> str:
        path, _, anchor = m["target"].partition("#")
        if not (path.startswith("../book/") and path.endswith(".md")):
            return m[0]
        page = path[3:-3]
        url = links.page(page, anchor)
        if url is None and links.base is not None:
            problems.append(f"link to {m['target']}: no such page in the book")
        return m[0] if url is None and links.base is not None else (f"[{m['text']}]({url})" if url else m["text"])
    return _LINK.sub(repl, text)


def _link_sections(text: str, page: str | None, links: BookLinks, problems: list[str]) -> str:
    """``(Book: *Title*)`` -> ``(Book: [*Title*](…#title))``; ``chapter N, *Title*`` looks in chapter N's page."""
    from .grading.interfaces import CHAPTERS

    def ref(m: re.Match) -> str:
        current = page

        def part(p: re.Match) -> str:
            nonlocal current
            if p["n"]:
                ch = CHAPTERS.get(f"ch{int(p['n']):02d}")
                current = f"book/{ch.slug}" if ch else None
                return p[0]
            url = links.section(current, p["title"]) if current else None
            if url is None:
                problems.append(f"(Book: *{' '.join(p['title'].split())}*): no such section in {current}")
                return p[0]
            return f"[{p[0]}]({url})"
        return f"({m['lead']}{_REF_PART.sub(part, m['body'])})"
    return _BOOK_REF.sub(ref, text) if links.base is not None else text


_BOOTSTRAP = """\
# On a hosted runtime (Google Colab) the course package is not installed yet: install it once per
# session. On your own machine this cell does nothing (you installed the package with pip).
import importlib, importlib.util, subprocess, sys

try:
    ON_COLAB = importlib.util.find_spec("google.colab") is not None
except ModuleNotFoundError:  # no google package at all
    ON_COLAB = False
if ON_COLAB and importlib.util.find_spec("tfmcourse") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", PACKAGE_URL], check=True)
    importlib.invalidate_caches()
"""


def bootstrap_source(package_url: str) -> str:
    """The first code cell of a released notebook: on Google Colab, install the course package."""
    return _BOOTSTRAP.replace("PACKAGE_URL", json.dumps(package_url))


def release_notebook(nb: dict[str, Any], name: str, links: BookLinks, package_url: str | None = None
                     ) -> tuple[dict[str, Any], list[str]]:
    """The released version of exercise notebook ``name`` (``"ch03_qkv"``); also the links it could not make.

    Markdown cells get book links (see the module docstring); with ``package_url`` a bootstrap cell
    (no nbgrader metadata, so nbgrader and ``tfmcourse grade`` treat it as the student's own code)
    goes before the first code cell.
    """
    nb = copy.deepcopy(nb)
    page = f"book/{name}" if f"book/{name}" in links.anchors else None
    problems: list[str] = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cell["source"] = _link_sections(_rewrite_links(src, links, problems), page, links, problems)
    if package_url:
        first = next(i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code")
        nb["cells"].insert(first, {"cell_type": "code", "execution_count": None, "id": BOOTSTRAP_ID,
                                   "metadata": {"tags": [BOOTSTRAP_ID]}, "outputs": [],
                                   "source": bootstrap_source(package_url)})
    return nb, [f"{name}: {p}" for p in problems]


_MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.MULTILINE)


def fill_answers(exercise: dict[str, Any], solution: dict[str, Any]) -> dict[str, Any]:
    """``exercise`` with each answer cell's source taken from ``solution``'s cell of the same ``grade_id``.

    The solution markers are dropped; everything else (test cells without hidden tests, links,
    bootstrap) stays as released, so the result is what a student who got everything right hands in.
    """
    answers = {}
    for c in solution["cells"]:
        meta = (c.get("metadata") or {}).get("nbgrader") or {}
        if meta.get("solution"):
            src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
            answers[meta["grade_id"]] = _MARKER.sub("", src)
    nb = copy.deepcopy(exercise)
    for c in nb["cells"]:
        meta = (c.get("metadata") or {}).get("nbgrader") or {}
        if meta.get("solution"):
            c["source"] = answers[meta["grade_id"]]
    return nb


def _ids(html: Path, cache: dict[Path, set[str]]) -> set[str]:
    if html not in cache:
        cache[html] = set(re.findall(r'\bid="([^"]+)"', html.read_text(encoding="utf-8", errors="replace")))
    return cache[html]


def check_links(release_dir: Path, book: BookLinks | None = None) -> list[str]:
    """Every link of the released notebooks that does not resolve, as ``notebook: target (why)``.

    A relative link must name a file inside the release, and its ``#anchor`` an ``id`` in that page. A
    link into the book at ``book.base`` (a URL) must name a page of the book and one of its section ids.
    Other web links are not followed (no network).
    """
    release_dir = Path(release_dir).resolve()
    problems: list[str] = []
    cache: dict[Path, set[str]] = {}
    for path in sorted(release_dir.glob("*/ch*.ipynb")):
        for cell in read_notebook(path)["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            for m in _LINK.finditer(src):
                target = m["target"]
                where, _, anchor = target.partition("#")
                why = None
                if book is not None and book.base and "://" in book.base and target.startswith(book.base):
                    page = where[len(book.base):].removesuffix(".html")
                    if page not in book.anchors:
                        why = "no such page in the book"
                    elif anchor and anchor not in book.anchors[page].values():
                        why = f"no section #{anchor} in {page}"
                elif re.match(r"^[a-z][a-z0-9+.-]*:", where) or not where:
                    continue  # a web link, or one inside this notebook
                else:
                    file = (path.parent / where).resolve()
                    if not file.is_relative_to(release_dir):
                        why = "outside the course folder"
                    elif not file.is_file():
                        why = "no such file in the release"
                    elif anchor and anchor not in _ids(file, cache):
                        why = f"no id {anchor!r} in {file.relative_to(release_dir)}"
                if why:
                    problems.append(f"{path.parent.name}/{path.name}: {target} ({why})")
    return problems


def read_notebook(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_notebook(nb: dict[str, Any], path: Path) -> None:
    """In the layout of the committed notebooks (:func:`tfmcourse.exercises.normalise`)."""
    from .exercises import normalise
    Path(path).write_text(normalise(json.dumps(nb)), encoding="utf-8")
