"""Links in the released notebooks lead to pages of the book, and to the sections they name.

The repository's notebooks link to the book's sources (``../book/ch03_qkv.md``), which the release
does not have. Released with ``--book-url``, every link must name a page of the book and one of its
sections (checked against the headings of ``book/*.md``); bundled (the default once ``make book`` has
run), every link must resolve to a file of the release and an ``id`` in it: that test needs the
built book and is marked ``book`` (``make test-book`` runs it after the build).
"""
import json
import os
import re
from pathlib import Path

import pytest

from tfmcourse.exercises import REPO_DIR
from tfmcourse.release import BOOK_HTML, build_release
from tfmcourse.release_notebooks import BookLinks, book_anchors, check_links

BOOK_URL = "https://course.example.org/tfmcourse/"
HTML = Path(os.environ.get("TFMCOURSE_BOOK_HTML", BOOK_HTML))  # as in test_book_browser.py
REQUIRE = os.environ.get("TFMCOURSE_REQUIRE_BROWSER", "") not in ("", "0")  # set by `make test-book`


def _markdown(folder):
    for path in sorted(folder.glob("ch*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "markdown":
                yield path.name, "".join(cell["source"])


def _sources_links():
    """``(notebook, target)`` of the links into ``book/`` of the repository's exercise notebooks."""
    return [(name, t) for name, text in _markdown(REPO_DIR / "exercises")
            for t in re.findall(r"\]\((\.\./book/[^)\s]+)\)", text)]


def _book_refs(folder):
    """How many section titles ``(Book: *Title*)`` references name, and how many of them are links."""
    titles, linked = 0, 0
    for _, text in _markdown(folder):
        for body in re.findall(r"\([Bb]ook:\s*((?:[^()]|\([^()]*\))*)\)", text):
            for m in re.finditer(r"\*[^*]+\*", body):
                titles += 1
                linked += body[m.start() - 1:m.start()] == "[" and body[m.end():m.end() + 2] == "]("
    return titles, linked


def test_url_release_links_every_page_and_section(tmp_path):
    rel = build_release(tmp_path / "course", book_url=BOOK_URL)
    assert rel.notes == [], rel.notes  # every (Book: *Section*) names a section that exists
    links = BookLinks(BOOK_URL, book_anchors(REPO_DIR / "book"))
    assert check_links(rel.path, links) == []
    released = list(_markdown(rel.path / "exercises"))
    assert not any("../book/" in text or ".md)" in text for _, text in released)
    n_links = sum(text.count(f"]({BOOK_URL}book/") for _, text in released)
    assert n_links >= len(_sources_links()) > 0
    titles, linked = _book_refs(rel.path / "exercises")
    assert titles == linked > 0, "a (Book: *Section*) reference was left without a link"
    # the stubs send students to the same pages
    assert f"book: {BOOK_URL}book/ch03_qkv.html" in (rel.path / "tfmcourse" / "attention.py").read_text()


def test_a_broken_link_is_reported(tmp_path):
    rel = build_release(tmp_path / "course", book_url=BOOK_URL)
    nb_path = rel.path / "exercises" / "ch03_qkv.ipynb"
    nb = json.loads(nb_path.read_text())
    nb["cells"][0]["source"] += f"\n[gone]({BOOK_URL}book/ch03_qkv.html#no-such-section) [x](../nothing.html)"
    nb_path.write_text(json.dumps(nb))
    problems = check_links(rel.path, BookLinks(BOOK_URL, book_anchors(REPO_DIR / "book")))
    assert len(problems) == 2 and "no section #no-such-section" in problems[0] and "no such file" in problems[1]


def test_without_a_book_the_links_become_text(tmp_path):
    rel = build_release(tmp_path / "course", book_html=None)
    assert any("no built book" in n for n in rel.notes)
    text = "\n".join(t for _, t in _markdown(rel.path / "exercises"))
    assert "](../book/" not in text and "chapter 3 of the book" in text
    assert check_links(rel.path) == []


@pytest.mark.book
def test_bundled_book_resolves_every_link_and_anchor(tmp_path):
    if not (HTML / "index.html").is_file():
        if REQUIRE:
            pytest.fail(f"no built book in {HTML}: run `make book` first")
        pytest.skip(f"no built book in {HTML} (make book)")
    rel = build_release(tmp_path / "course", book_html=HTML)
    assert rel.book == "bundled" and (rel.path / "book" / "index.html").is_file()
    assert rel.notes == [], rel.notes  # build_release checks the bundled links itself
    assert check_links(rel.path) == []
    targets = [t for _, text in _markdown(rel.path / "exercises") for t in re.findall(r"\]\(([^)\s]+)\)", text)]
    local = [t for t in targets if t.startswith("../book/")]
    assert len(local) >= len(_sources_links()) and sum("#" in t for t in local) >= 20
    titles, linked = _book_refs(rel.path / "exercises")
    assert titles == linked > 0
    readme = (rel.path / "README.md").read_text()
    assert "book/index.html" in readme
