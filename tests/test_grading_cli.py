"""``tfmcourse grade``: layouts, chapter from file names, unreadable notebooks, resuming after a kill."""
from __future__ import annotations

import csv
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tfmcourse.cli import main as tfm_main
from tfmcourse.grading import cli
from tfmcourse.grading.intake import Intake
from tfmcourse.grading.pool import sweep_stale_folders
from tfmcourse.grading.testing import blank_source, reference_source, write_notebook


@pytest.fixture(scope="module")
def subs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("subs")
    write_notebook(root / "ada" / "ch03_qkv.ipynb", reference_source("ch03"))
    write_notebook(root / "bob" / "ch03_qkv" / "ch03_qkv.ipynb", blank_source("ch03"))  # nbgrader's layout
    (root / "dan.ipynb").write_text("{this is not json")
    write_notebook(root / "eve" / "ch04_multihead.ipynb", "x = 1")  # no ch03 notebook: her row says so
    return root


def test_discover_layouts(subs, tmp_path):
    intake = Intake(tmp_path)
    found, chapter = intake.discover([subs], None)
    assert chapter == "ch03" and intake.warnings == []
    assert [s.student for s in found] == ["ada", "bob", "dan", "eve"]
    *graded, eve = found
    assert all(s.copy.startswith(str(tmp_path)) and not s.rejected for s in graded)  # graded from private copies
    assert "no ch03_qkv.ipynb in this folder (found ch04_multihead.ipynb)" in eve.rejected and not eve.copy
    with pytest.raises(ValueError, match="pass --chapter"):
        Intake(tmp_path).discover([subs / "dan.ipynb"], None)


def test_help_and_usage_errors(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        tfm_main(["grade", "--help"])
    assert e.value.code == 0 and "--jobs" in capsys.readouterr().out
    assert cli.main([str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def _run_cli(subs: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tfmcourse.cli", "grade", str(subs), "--chapter", "ch03", "--jobs", "2",
                             "--out", str(out / "gradebook.csv"), "--timeout", "20", "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def test_killed_run_resumes_to_the_same_gradebook(subs, tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert _run_cli(subs, clean).wait(timeout=300) == 0
    proc = _run_cli(subs, killed)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list((killed / "results_ch03").glob("*.json")):
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole run: CLI, grader processes, sandbox workers
    proc.wait()
    # what the killed run left (its notebooks' private copies, grader and sandbox folders) is private,
    # and a later grader sweeps it (here at once; by default once it has been unchanged for an hour)
    left = list(Path(tempfile.gettempdir()).glob(f"tfm-*-{proc.pid}-*"))
    assert left and all(stat.S_IMODE(p.stat().st_mode) == 0o700 and p.stat().st_uid == os.getuid() for p in left)
    assert set(sweep_stale_folders(older_than_s=0)) >= set(left) and not any(p.exists() for p in left)
    done = sorted(p.stem for p in (killed / "results_ch03").glob("*.json"))
    assert 1 <= len(set(done) - {"eve"}) < 3, done  # eve is a rejection, recorded at once
    assert _run_cli(subs, killed).wait(timeout=300) == 0
    assert (killed / "gradebook.csv").read_bytes() == (clean / "gradebook.csv").read_bytes()
    rows = {r["student"]: r for r in csv.DictReader((clean / "gradebook.csv").open())}
    assert rows["ada"]["percent"] == "100.0" and rows["bob"]["score"] == "0"
    assert rows["dan"]["score"] == "0" and rows["dan"]["status"] == "graded"
    dan = (clean / "feedback_ch03" / "dan.md").read_text()
    assert "not valid notebook JSON" in dan
    assert sorted(p.name for p in (killed / "feedback_ch03").iterdir()) == ["ada.md", "bob.md", "dan.md", "eve.md"]
    # a second run grades nothing; a changed notebook is graded again
    before = json.loads((killed / "results_ch03" / "ada.json").read_text())
    assert _run_cli(subs, killed).wait(timeout=300) == 0
    assert json.loads((killed / "results_ch03" / "ada.json").read_text()) == before
