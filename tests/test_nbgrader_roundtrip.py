"""nbgrader and ``tfmcourse grade`` agree: the same notebooks get the same percentage both ways.

Every chapter's solution notebook ends with one graded cell that runs its whole hidden suite and carries
exactly its points (``python -m tfmcourse.exercises --sync-points``); nbgrader reads the points earned,
which the cell returns, as partial credit. This test runs the real ``nbgrader generate_assignment``,
``autograde`` and ``export`` on, per chapter, the solution, the blank release and a sample of the mutant
corpus (``TFM_PARITY_SAMPLE`` mutants per chapter, spread over the corpus), and grades the same notebooks
with ``tfmcourse grade`` (sandboxed). ``make test`` checks two chapters (ch03, ch06) with one mutant each; ``make parity``
checks every chapter with its blank release and 10 mutants (8 minutes on two cores).
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tfmcourse.exercises import HIDDEN_CELL_ID, REPO_DIR
from tfmcourse.grading import cli as grade_cli
from tfmcourse.grading import interfaces
from tfmcourse.grading.runner import suite_points
from tfmcourse.grading.testing import chapters_with_suites, mutant_files, mutant_source, nbgrader_submission

SAMPLE = int(os.environ.get("TFM_PARITY_SAMPLE", "1"))
# make test: two chapters (a function; modules and the training loop) with the solution and one mutant each;
# make parity: every chapter, the blank release and 10 mutants each (TFM_PARITY_SAMPLE=10 TFM_PARITY_CHAPTERS=all)
_CHOSEN = os.environ.get("TFM_PARITY_CHAPTERS", "ch03,ch06")
CHAPTERS = chapters_with_suites() if _CHOSEN == "all" else [c for c in _CHOSEN.split(",") if c]
WITH_BLANK = SAMPLE > 1

CONFIG = """
c = get_config()
c.CourseDirectory.course_id = "tfmcourse"
c.CourseDirectory.db_url = "sqlite:///{root}/gradebook.db"
c.CourseDirectory.root = "{root}"
c.Exchange.root = "{root}/exchange"
c.ExecutePreprocessor.timeout = 600
"""


def _solution(chapter: str) -> Path:
    return REPO_DIR / "solutions" / f"{interfaces.get_chapter(chapter).slug}.ipynb"


def _hidden_cell(chapter: str) -> dict | None:
    nb = json.loads(_solution(chapter).read_text())
    return next((c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("grade_id") == HIDDEN_CELL_ID), None)


@pytest.mark.parametrize("chapter", chapters_with_suites())
def test_nbgrader_points_are_the_suites_points(chapter):
    """One graded cell carries the suite's points; no other cell is graded (so nothing else can differ)."""
    nb = json.loads(_solution(chapter).read_text())
    graded = [c["metadata"]["nbgrader"] for c in nb["cells"]
              if c["metadata"].get("nbgrader", {}).get("grade") and not c["metadata"]["nbgrader"].get("solution")]
    assert [g["grade_id"] for g in graded] == [HIDDEN_CELL_ID], \
        f"{chapter}: graded cells {[g['grade_id'] for g in graded]}; run python -m tfmcourse.exercises --sync-points"
    assert graded[0]["points"] == sum(suite_points(chapter).values()), \
        "the suite's points changed: run python -m tfmcourse.exercises --sync-points, then make exercises"
    assert f"nbgrader_points({chapter!r}, globals())" in "".join(_hidden_cell(chapter)["source"])


def _nbgrader(root: Path, *args: str) -> subprocess.CompletedProcess:
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.run([str(Path(bindir) / "nbgrader"), *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=3600)


def _sample(chapter: str) -> list[Path]:
    files = mutant_files(chapter)
    step = max(1, len(files) // max(1, SAMPLE))
    return files[::step][:SAMPLE]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_autograde_and_tfmcourse_grade_agree(tmp_path, chapter):
    chapters = [chapter]
    if _hidden_cell(chapter) is None:
        pytest.skip("the solution notebook has no hidden-tests cell (python -m tfmcourse.exercises --sync-points)")
    root, ours = tmp_path / "course", tmp_path / "subs"
    root.mkdir()
    (root / "nbgrader_config.py").write_text(CONFIG.format(root=root))
    students: dict[str, dict[str, dict]] = {}
    for ch in chapters:
        slug = interfaces.get_chapter(ch).slug
        (root / "source" / slug).mkdir(parents=True)
        shutil.copy2(_solution(ch), root / "source" / slug / f"{slug}.ipynb")
        result = _nbgrader(root, "generate_assignment", slug, "--force")
        assert result.returncode == 0, result.stderr[-3000:]
        release = json.loads((root / "release" / slug / f"{slug}.ipynb").read_text())
        students[ch] = {"reference": json.loads(_solution(ch).read_text()), **({"blank": release} if WITH_BLANK else {})}
        students[ch].update({m.stem: nbgrader_submission(release, mutant_source(m)) for m in _sample(ch)})
        for name, nb in students[ch].items():
            dest = root / "submitted" / f"{ch}-{name}" / slug
            dest.mkdir(parents=True)
            (dest / f"{slug}.ipynb").write_text(json.dumps(nb))
            (dest / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")
            (ours / ch).mkdir(parents=True, exist_ok=True)
            (ours / ch / f"{name}.ipynb").write_text(json.dumps(nb))
        result = _nbgrader(root, "autograde", slug, "--force")
        assert result.returncode == 0, result.stderr[-3000:]
    result = _nbgrader(root, "export")
    assert result.returncode == 0, result.stderr[-3000:]
    theirs = {(r["assignment"], r["student_id"]): float(r["raw_score"]) / float(r["max_score"])
              for r in csv.DictReader((root / "grades.csv").open())}
    disagree = []
    for ch in chapters:
        book = tmp_path / f"gradebook_{ch}.csv"
        assert grade_cli.main([str(ours / ch), "--chapter", ch, "--out", str(book), "--jobs", "2", "-q"]) == 0
        for row in csv.DictReader(book.open()):
            ours_pct = float(row["score"]) / float(row["max_score"])
            nb_pct = theirs[(interfaces.get_chapter(ch).slug, f"{ch}-{row['student']}")]
            if abs(ours_pct - nb_pct) > 1e-9:
                disagree.append(f"{ch} {row['student']}: tfmcourse grade {ours_pct:.4f}, nbgrader {nb_pct:.4f}")
            if row["student"] == "reference":
                assert ours_pct == 1.0
            if row["student"] == "blank":
                assert ours_pct == 0.0
    assert not disagree, "\n".join(disagree)
