"""Generate the student notebooks in ``exercises/`` from the instructor's ``solutions/`` with nbgrader.

nbgrader wants a course directory (``source/<assignment>/<notebook>.ipynb`` in, ``release/…`` out).
This module builds one in a temporary folder, runs the real ``generate_assignment`` (which strips the
``### BEGIN SOLUTION`` regions to ``# YOUR CODE HERE`` / ``raise NotImplementedError()`` and removes
``### BEGIN HIDDEN TESTS`` blocks) and copies the result to ``exercises/``. One assignment per chapter,
named like the notebook (``ch03_qkv``).

    python -m tfmcourse.exercises            # regenerate exercises/ (also: make exercises)
    python -m tfmcourse.exercises --check    # exit 1 if the committed exercises/ drifted
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from .grading.notebook import CHECK_TAG

__all__ = ["generate_exercises", "normalise", "drifted"]

REPO_DIR = Path(__file__).resolve().parent.parent


def _api(course_dir: Path):
    # nbgrader shells out to `alembic`, which lives beside this interpreter in a venv that may not be on PATH.
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    cfg = Config()
    cfg.CourseDirectory.root = str(course_dir)
    cfg.CourseDirectory.course_id = "tfmcourse"
    cfg.CourseDirectory.db_url = f"sqlite:///{course_dir / 'gradebook.db'}"
    cfg.Exchange.root = str(course_dir / "exchange")
    cfg.Application.log_level = logging.ERROR
    return NbGraderAPI(CourseDirectory(config=cfg), config=cfg)


def generate_exercises(solutions: Path | str = REPO_DIR / "solutions", out: Path | str = REPO_DIR / "exercises",
                       names: list[str] | None = None) -> list[Path]:
    """Run ``nbgrader generate_assignment`` on each ``solutions/<name>.ipynb``; write ``out/<name>.ipynb``.

    Extra files beside a notebook that share its stem as a prefix are not needed: each chapter is one
    self-contained notebook. Returns the written paths.
    """
    solutions, out = Path(solutions), Path(out)
    sources = sorted(solutions.glob("*.ipynb")) if names is None else [solutions / f"{n}.ipynb" for n in names]
    if not sources:
        raise FileNotFoundError(f"no solution notebooks in {solutions}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(prefix="tfm-nbgrader-") as tmp:
        course = Path(tmp)
        for src in sources:
            name = src.stem
            (course / "source" / name).mkdir(parents=True)
            shutil.copy2(src, course / "source" / name / src.name)
        api = _api(course)
        for src in sources:
            result = api.generate_assignment(src.stem, force=True, create=True)
            if not result.get("success"):
                raise RuntimeError(f"nbgrader generate_assignment failed for {src.name}:\n{result.get('log') or result.get('error')}")
            dest = out / src.name
            dest.write_text(normalise((course / "release" / src.stem / src.name).read_text()))
            written.append(dest)
    return written


def normalise(text: str) -> str:
    """Stable JSON (sorted keys, fixed indent) so regenerated notebooks compare byte for byte."""
    return json.dumps(json.loads(text), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def drifted(solutions: Path | str = REPO_DIR / "solutions", exercises: Path | str = REPO_DIR / "exercises") -> list[str]:
    """Names of exercise notebooks that differ from a fresh regeneration (or are missing/extra)."""
    exercises = Path(exercises)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.name: p.read_text() for p in generate_exercises(solutions, tmp)}
    committed = {p.name: p.read_text() for p in exercises.glob("*.ipynb")}
    return sorted(n for n in fresh.keys() | committed.keys() if fresh.get(n) != committed.get(n))


HIDDEN_CELL_ID = "hidden_tests"
_HIDDEN_BLOCK = re.compile(r"\n?### BEGIN HIDDEN TESTS\n.*?### END HIDDEN TESTS\n?", re.S)


def hidden_tests_source(chapter: str) -> str:
    return ("# The course's hidden tests of this chapter run here when your instructor grades the notebook\n"
            "# (the points are theirs; the checks above are the visible part).\n"
            "### BEGIN HIDDEN TESTS\n"
            "from tfmcourse.grading import nbgrader_points\n"
            f"nbgrader_points({chapter!r}, globals())\n"
            "### END HIDDEN TESTS\n")


def sync_points(path: Path | str) -> bool:
    """Make a solution notebook's nbgrader points those of its chapter's hidden suite; return whether it changed.

    The visible check cells stay (read-only, not graded); one graded cell at the end runs the whole hidden
    suite with :func:`~tfmcourse.grading.nbgrader.nbgrader_points` and carries exactly its points, so
    ``nbgrader autograde`` and ``tfmcourse grade`` give every submission the same percentage.
    """
    from .grading.interfaces import chapter_from_filename
    from .grading.runner import suite_points

    path = Path(path)
    ch = chapter_from_filename(path)
    nb = json.loads(path.read_text())
    try:
        total = sum(suite_points(ch.id).values())
        points = int(total) if total == int(total) else total
    except FileNotFoundError:  # no hidden suite for this notebook (yet)
        return False
    cells, hidden = [], None
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade_id") == HIDDEN_CELL_ID:
            hidden = cell
            continue
        visible_check = cell["cell_type"] == "code" and not meta.get("solution") and (
            meta.get("grade") or (meta.get("locked") and meta.get("grade_id") != "setup"))
        if visible_check:  # read-only, no points
            meta.update(grade=False, locked=True)
            meta.pop("points", None)
            tags = cell["metadata"].setdefault("tags", [])
            if CHECK_TAG not in tags:
                tags.append(CHECK_TAG)  # the grader skips it, as it skips graded cells
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = _HIDDEN_BLOCK.sub("\n", src).rstrip("\n").splitlines(keepends=True)
        cells.append(cell)
    hidden = hidden or {"cell_type": "code", "execution_count": None, "id": HIDDEN_CELL_ID, "outputs": [],
                        "metadata": {}}
    hidden["source"] = hidden_tests_source(ch.id).rstrip("\n").splitlines(keepends=True)
    hidden["metadata"]["nbgrader"] = {"grade": True, "grade_id": HIDDEN_CELL_ID, "locked": True, "points": points,
                                      "schema_version": 3, "solution": False, "task": False}
    last_code = max(i for i, c in enumerate(cells) if c["cell_type"] == "code")
    cells.insert(last_code + 1, hidden)
    nb["cells"] = cells
    text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    changed = text != path.read_text()
    if changed:
        path.write_text(text)
    return changed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tfmcourse.exercises", description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only report whether exercises/ drifted")
    p.add_argument("--sync-points", action="store_true",
                   help="first give each solution notebook's graded cell its hidden suite's points")
    a = p.parse_args(argv)
    if a.sync_points:
        for path in sorted((REPO_DIR / "solutions").glob("ch0*.ipynb")):
            if sync_points(path):
                print(f"updated the nbgrader points of {path.relative_to(REPO_DIR)}")
    if a.check:
        bad = drifted()
        if bad:
            print("exercises/ drifted from solutions/ (run `make exercises`): " + ", ".join(bad), file=sys.stderr)
            return 1
        print("exercises/ is in sync with solutions/")
        return 0
    for path in generate_exercises():
        print(f"wrote {path.relative_to(REPO_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
