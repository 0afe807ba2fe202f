"""``tfmcourse release OUTDIR``: build the course folder students get.

The reference package marks each exercise's body with ``# BEGIN SOLUTION chNN`` / ``# END SOLUTION``.
The release copies the package with every such region replaced by a stub that says what to implement
and where the book explains it (the regions of chapters up to ``--solutions-through`` stay, once their
deadline has passed), and adds:

* ``exercises/``: the student notebooks, with links to the built book (bundled in ``book/`` or at
  ``--book-url``) and, with ``--package-url``, a first cell that installs the package on Google Colab;
* ``README.md`` and ``pyproject.toml`` for students (``pip install ".[student]"``), from the
  templates in ``tfmcourse/release_files/``;
* with ``--solution-notebooks``: ``solutions/``, the released chapters' notebooks with the answers in.

The hidden suites and mutant corpora live under ``tests/`` and are never copied; the grading package
itself holds no expected values (its notebook loader is what ``tfmcourse.student`` uses to reuse a
student's earlier answers). Everything that is not an exercise (data, training, plots) keeps working.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .release_notebooks import (
    BookLinks,
    book_anchors,
    check_links,
    fill_answers,
    read_notebook,
    release_notebook,
    write_notebook,
)

__all__ = ["stub_source", "build_release", "chapter_page", "RELEASE_INFO"]

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
BOOK_HTML = REPO_DIR / "_build" / "html"
RELEASE_INFO = "_release.py"  # written into the released package; its presence makes an install a student's
# Parts of the package a student does not get: the release templates (the rest, see the module docstring).
EXCLUDED: tuple[str, ...] = ("release_files",)

_BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION (?P<chapter>ch\d\d)\s*$")
_END = re.compile(r"^\s*# END SOLUTION\s*$")
_DEF = re.compile(r"^(?P<indent>\s*)(?:async\s+)?def\s+(?P<name>\w+)")
_CLASS = re.compile(r"^(?P<indent>\s*)class\s+(?P<name>\w+)")


def chapter_page(chapter: str) -> str:
    """``"ch03"`` -> ``"ch03_qkv"``: the name of its notebook and book page."""
    from .grading.interfaces import GRADED
    return GRADED[chapter].slug if chapter in GRADED else chapter


def _qualname(lines: list[str], i: int) -> str:
    """Name of the function (``Class.method``) whose body contains line ``i``."""
    func, func_indent = "?", None
    for j in range(i - 1, -1, -1):
        m = _DEF.match(lines[j])
        if m and func_indent is None:
            func, func_indent = m["name"], len(m["indent"])
            if func_indent == 0:
                return func
            continue
        m = _CLASS.match(lines[j])
        if m and func_indent is not None and len(m["indent"]) < func_indent:
            return f"{m['name']}.{func}"
    return func


def _where(chapter: str, book: BookLinks | None) -> str:
    page = chapter_page(chapter)
    hint = book.hint(f"book/{page}") if book else ""
    return f"exercises/{page}.ipynb" + (f"; book: {hint}" if hint else "")


def stub_source(text: str, chapters: set[str] | None = None, *, book: BookLinks | None = None) -> str:
    """Replace the solution regions of ``chapters`` (all if ``None``) by ``raise NotImplementedError``.

    The message names the function, its chapter, notebook and (with ``book``) the book page.

    Raises:
        ValueError: on an unclosed or nested region (so a broken marker can never leak a solution).
    """
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        m = _BEGIN.match(lines[i])
        if m is None:
            if _END.match(lines[i]):
                raise ValueError(f"line {i + 1}: END SOLUTION without BEGIN")
            out.append(lines[i])
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if _END.match(lines[j]) or _BEGIN.match(lines[j])), None)
        if end is None or _BEGIN.match(lines[end]):
            raise ValueError(f"line {i + 1}: BEGIN SOLUTION {m['chapter']} is not closed by END SOLUTION")
        chapter = m["chapter"]
        if chapters is None or chapter in chapters:
            msg = f"implement {_qualname(lines, i)} (chapter {int(chapter[2:])}: {_where(chapter, book)})"
            out.append(f'{m["indent"]}raise NotImplementedError({json.dumps(msg)})')  # "…": what is_stub looks for
        else:
            out.extend(lines[i + 1:end])
        i = end + 1
    return "\n".join(out)


@dataclass
class Release:
    """What :func:`build_release` wrote: the folder, and notes for the instructor (links it could not make)."""

    path: Path
    notes: list[str] = field(default_factory=list)
    book: str | None = None  # "bundled", the book URL, or None


def _through(chapter: str | None, notebooks: list[Path]) -> int:
    """``"ch05"`` (or ``"5"``) -> 5, checked against the exercise notebooks; ``None`` -> 0."""
    if chapter is None:
        return 0
    m = re.fullmatch(r"(?:ch)?0*(\d+)", chapter.strip().lower())
    numbers = sorted(int(p.name[2:4]) for p in notebooks)
    if m is None or int(m[1]) not in numbers:
        raise ValueError(f"--solutions-through {chapter}: choose a chapter of exercises/, ch{numbers[0]:02d}.."
                         f"ch{numbers[-1]:02d}")
    return int(m[1])


def _book_links(book_url: str | None, book_html: Path | None) -> BookLinks:
    anchors = book_anchors(REPO_DIR / "book")
    if book_url:
        return BookLinks(book_url.rstrip("/") + "/", anchors)
    if book_html is not None and (book_html / "index.html").is_file():
        return BookLinks("../book/", anchors, where="book/")
    return BookLinks(None, anchors)


def build_release(outdir: str | Path, *, force: bool = False, solutions_through: str | None = None,
                  solution_notebooks: bool = False, book_url: str | None = None, book_html: Path | None = BOOK_HTML,
                  package_url: str | None = None) -> Release:
    """Write the student release to ``outdir`` (see the module docstring).

    Args:
        solutions_through: keep the reference of chapters up to this one (``"ch05"``) in the package.
        solution_notebooks: also write those chapters' notebooks with the answers in, to ``solutions/``.
        book_url: link the notebooks to the book published there, instead of bundling ``book_html``.
        book_html: the built book (``make book``); bundled when it exists and no ``book_url`` is given.
        package_url: what the notebooks' first cell ``pip install``s on Google Colab (a wheel, a zip of
            this release, a ``git+https://`` URL); no such cell without it.
    """
    from .release_docs import pyproject, readme

    out = Path(outdir)
    exercises = REPO_DIR / "exercises"
    notebooks = sorted(exercises.glob("ch*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no exercise notebooks in {exercises}; run from a tfmcourse source checkout "
                                f"after `make exercises`")
    through = _through(solutions_through, notebooks)
    if solution_notebooks and not through:
        raise ValueError("--solution-notebooks needs --solutions-through chNN (which chapters' solutions to release)")
    if out.exists():
        if not force:
            raise FileExistsError(f"{out} exists; pass --force to replace it")
        shutil.rmtree(out)
    links = _book_links(book_url, book_html)
    release = Release(out, book=book_url or ("bundled" if links.base else None))

    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", *EXCLUDED)
    shutil.copytree(PACKAGE_DIR, out / "tfmcourse", ignore=ignore)
    stubbed = {f"ch{n:02d}" for n in range(through + 1, 100)}
    for path in (out / "tfmcourse").rglob("*.py"):
        path.write_text(stub_source(path.read_text(), stubbed, book=links))
    info = {"SOLUTIONS_THROUGH": f"ch{through:02d}" if through else None,
            "BOOK": book_url or ("book/" if links.base else None), "PACKAGE_URL": package_url}
    (out / "tfmcourse" / RELEASE_INFO).write_text(
        '"""Written by `tfmcourse release`: this tfmcourse is a student release (see its README.md)."""\n'
        + "".join(f"{k} = {v!r}\n" for k, v in info.items()))

    (out / "exercises").mkdir()
    for path in notebooks:
        nb, problems = release_notebook(read_notebook(path), path.stem, links, package_url)
        release.notes += problems
        write_notebook(nb, out / "exercises" / path.name)
        if solution_notebooks and int(path.name[2:4]) <= through:
            (out / "solutions").mkdir(exist_ok=True)
            write_notebook(fill_answers(nb, read_notebook(REPO_DIR / "solutions" / path.name)),
                           out / "solutions" / path.name)
    if links.base == "../book/":
        shutil.copytree(book_html, out / "book", ignore=shutil.ignore_patterns(".buildinfo", ".doctrees"))
        release.notes += check_links(out)
    elif links.base is None:
        release.notes.append(f"no built book in {book_html} and no --book-url: the notebooks' links to the book "
                             f"are plain text (run `make book` first, or pass --book-url URL)")
    (out / "README.md").write_text(readme(through=through, book=release.book, package_url=package_url,
                                          notebooks=[p.name for p in notebooks], solution_notebooks=solution_notebooks))
    (out / "pyproject.toml").write_text(pyproject())
    if (REPO_DIR / "LICENSE").exists():
        shutil.copy2(REPO_DIR / "LICENSE", out / "LICENSE")
    return release


def main(argv: list[str] | None = None) -> int:
    from .cli import plain
    p = argparse.ArgumentParser(prog="tfmcourse release", description=plain(__doc__.split("\n\n")[0]))
    p.add_argument("outdir", help="folder to write the release into")
    p.add_argument("--force", action="store_true", help="replace outdir if it exists")
    p.add_argument("--solutions-through", metavar="chNN",
                   help="include the reference solutions of chapters up to chNN (their deadline has passed)")
    p.add_argument("--solution-notebooks", action="store_true",
                   help="with --solutions-through: also write those chapters' notebooks with answers to solutions/")
    p.add_argument("--book-url", metavar="URL", help="link the notebooks to the book published at URL "
                   "(default: bundle the built book from _build/html when it exists)")
    p.add_argument("--book-html", metavar="DIR", type=Path, default=BOOK_HTML,
                   help="the built book to bundle (default: _build/html, written by `make book`)")
    p.add_argument("--package-url", metavar="URL", help="on Google Colab, each notebook's first cell installs "
                   "the course package from URL (a wheel, a zip of the release or git+https://...)")
    a = p.parse_args(argv)
    try:
        rel = build_release(a.outdir, force=a.force, solutions_through=a.solutions_through,
                            solution_notebooks=a.solution_notebooks, book_url=a.book_url, book_html=a.book_html,
                            package_url=a.package_url)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"tfmcourse release: {e}", file=sys.stderr)
        return 1
    for note in rel.notes:
        print(f"tfmcourse release: warning: {note}", file=sys.stderr)
    n = len(list((rel.path / "exercises").glob("*.ipynb")))
    book = {"bundled": "the built book in book/", None: "no book"}.get(rel.book, f"links to {rel.book}")
    solutions = f"solutions through {a.solutions_through}" if a.solutions_through else "no solutions"
    print(f"wrote {rel.path}: {n} exercise notebooks, the stubbed tfmcourse package ({solutions}), {book}")
    return 0
