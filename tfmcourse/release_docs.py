"""The student release's README.md and pyproject.toml, filled in from the templates in ``release_files/``.

The README's install block is the one a student runs; ``tests/test_release.py`` runs that very block,
so what it says is what is tested. Chapter names, what each writes and which earlier chapters it uses
come from :data:`tfmcourse.grading.interfaces.CHAPTERS` and :data:`tfmcourse.student.NEEDS`.
"""
from __future__ import annotations

import json
from pathlib import Path
from string import Template

__all__ = ["readme", "pyproject", "INSTALL_DISK"]

TEMPLATES = Path(__file__).resolve().parent / "release_files"
REPO_DIR = Path(__file__).resolve().parent.parent
TORCH = "2.13.0"  # the course's CPU wheel (the Makefile's TORCH pin)
# `du -sh .venv` after the README's install block, Linux, CPU wheel of torch 2.13.0 (2026-12-01).
INSTALL_DISK = "1.5 GB"


def _project() -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    return tomllib.loads((REPO_DIR / "pyproject.toml").read_text())["project"]


def pyproject() -> str:
    """The release's pyproject.toml: the repository's name, version and dependencies, and only the student extra."""
    project = _project()
    license_ = project["license"]["text"] if isinstance(project["license"], dict) else project["license"]
    return Template((TEMPLATES / "pyproject.toml").read_text()).substitute(
        version=project["version"], description=json.dumps(project["description"]),
        requires_python=json.dumps(project["requires-python"]), license=json.dumps(license_),
        dependencies=json.dumps(project["dependencies"]),
        student=json.dumps(project["optional-dependencies"]["student"]))


def _chapter_rows(notebooks: list[str]) -> str:
    from .grading.interfaces import GRADED
    from .student import NEEDS

    rows = []
    for name in notebooks:
        ch = GRADED[name[:4]]
        writes = ", ".join(f"`{n}`" for n in ch.names)
        if ch.capstone:
            writes += "; then your GPT and ViT train"
        needs = ", ".join(str(int(c[2:])) for c in NEEDS.get(ch.id, ())) or "-"
        rows.append(f"| {ch.number}. {ch.title} | `{name}` | {writes} | {needs} |")
    return "\n".join(rows)


def readme(*, through: int, book: str | None, package_url: str | None, notebooks: list[str],
           solution_notebooks: bool) -> str:
    """The student README for a release (see :func:`tfmcourse.release.build_release` for the arguments)."""
    rows = ""
    if book == "bundled":
        rows += "| the book, as web pages that work offline: open `book/index.html` | `book/` |\n"
    if solution_notebooks:
        rows += f"| the solved notebooks of chapters 1 to {through} | `solutions/` |\n"
    if book == "bundled":
        book_text = ("The book is in `book/`: open `book/index.html` in your browser (double-click it; it works "
                     "offline). Each notebook links to its chapter and to the sections that explain each exercise.")
    elif book:
        book_text = (f"The book is online at <{book}>. Each notebook links to its chapter and to the sections that "
                     f"explain each exercise.")
    else:
        book_text = "Your instructor will tell you where the book is published."
    if through:
        solutions = (f"**Solutions of chapters 1 to {through} are included.** Where your own answer to one of them "
                     f"is missing or unfinished, `setup` uses the released solution instead, and says so, so that "
                     f"you can go on with the later chapters.")
        if solution_notebooks:
            solutions += " Their solved notebooks are in `solutions/`; keep them out of `exercises/`."
        setup_line = "Where your answer is missing, it uses the released solution of that chapter."
    else:
        solutions = ("A chapter's checks and training runs use your answers from the chapters in the last column. "
                     "Until those are done, `setup` says once which are missing, and the checks that use them "
                     "fail with a message naming the exercise to finish.")
        setup_line = "If a chapter this one builds on is not done yet, that line says which."
    if package_url:
        hosted = ("Upload a notebook there (*File → Upload notebook*); its first cell installs the course package\n"
                  "  when it runs on Colab. A notebook reads your earlier answers from the folder it runs in, on\n"
                  "  Colab the session's files (`/content`): upload your chapter notebooks there too (the folder\n"
                  "  icon on the left, then *Upload*), or mount Google Drive and `%cd` into the folder that holds\n"
                  "  them. Files uploaded to a session are deleted when it ends: download your notebooks first.")
    else:
        hosted = ("This release has no hosted-notebook set-up; ask your instructor for one (they add "
                  "`--package-url` when they make the release).")
    return Template((TEMPLATES / "README.md").read_text()).substitute(
        contents_rows=rows, python=_project()["requires-python"].removeprefix(">="), disk=INSTALL_DISK,
        torch=TORCH, setup_line=setup_line, chapter_rows=_chapter_rows(notebooks),
        solutions_paragraph=solutions, book_paragraph=book_text, hosted_paragraph=hosted)
