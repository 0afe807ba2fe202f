"""The nbgrader round trip: release, two students submit, `nbgrader autograde` and `nbgrader export`.

The solution scores full marks, the blank release zero on every autograded cell, and the percentages
agree with `tfmcourse grade` on the same notebooks.
"""
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tfmcourse.exercises import REPO_DIR
from tfmcourse.grading import cli as grade_cli

CHAPTER, SLUG = "ch03", "ch03_qkv"
SOLUTION = REPO_DIR / "solutions" / f"{SLUG}.ipynb"

pytestmark = [pytest.mark.ch03, pytest.mark.skipif(not SOLUTION.exists(), reason="no solution notebook yet")]

CONFIG = """
c = get_config()
c.CourseDirectory.course_id = "tfmcourse"
c.CourseDirectory.db_url = "sqlite:///{root}/gradebook.db"
c.CourseDirectory.root = "{root}"
c.Exchange.root = "{root}/exchange"
c.ExecutePreprocessor.timeout = 300
"""


def _nbgrader(root: Path, *args: str) -> subprocess.CompletedProcess:
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.run([str(Path(bindir) / "nbgrader"), *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=900)


def test_autograde_and_export_agree_with_tfmcourse_grade(tmp_path):
    root = tmp_path / "course"
    (root / "source" / SLUG).mkdir(parents=True)
    (root / "nbgrader_config.py").write_text(CONFIG.format(root=root))
    shutil.copy2(SOLUTION, root / "source" / SLUG / SOLUTION.name)
    assert _nbgrader(root, "generate_assignment", SLUG, "--force").returncode == 0
    released = root / "release" / SLUG / SOLUTION.name
    for student, nb in (("alice", SOLUTION), ("bob", released)):
        dest = root / "submitted" / student / SLUG
        dest.mkdir(parents=True)
        shutil.copy2(nb, dest / SOLUTION.name)
        (dest / "timestamp.txt").write_text("2026-11-20 12:00:00.000000 UTC")
    result = _nbgrader(root, "autograde", SLUG, "--force")
    assert result.returncode == 0, result.stderr[-3000:]
    result = _nbgrader(root, "export")
    assert result.returncode == 0, result.stderr[-3000:]
    grades = {r["student_id"]: r for r in csv.DictReader((root / "grades.csv").open())}
    alice, bob = grades["alice"], grades["bob"]
    assert float(alice["max_score"]) > 0 and float(alice["raw_score"]) == float(alice["max_score"])
    assert float(bob["raw_score"]) == 0.0

    # the same two notebooks through the sandboxed grader
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy2(SOLUTION, subs / "alice.ipynb")
    shutil.copy2(released, subs / "bob.ipynb")
    book = tmp_path / "gradebook.csv"
    assert grade_cli.main([str(subs), "--chapter", CHAPTER, "--out", str(book), "--jobs", "2", "-q"]) == 0
    ours = {r["student"]: r for r in csv.DictReader(book.open())}
    pct = {s: float(r["score"]) / float(r["max_score"]) for s, r in ours.items()}
    assert pct == {"alice": 1.0, "bob": 0.0}
    assert pct["alice"] == float(alice["raw_score"]) / float(alice["max_score"])
    assert pct["bob"] == float(bob["raw_score"]) / float(alice["max_score"])
