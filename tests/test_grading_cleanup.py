"""Grading leaves no folders behind, even when a grader process has to be killed mid-submission."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tfmcourse.grading.gradebook import Submission
from tfmcourse.grading.pool import GraderProcess
from tfmcourse.grading.sandbox import Limits
from tfmcourse.grading.testing import write_notebook

pytestmark = pytest.mark.ch03
HOSTILE = Path(__file__).parent / "hostile"


def test_killing_the_runner_mid_submission_leaves_no_folders(tmp_path):
    nb = write_notebook(tmp_path / "mallory" / "ch03_qkv.ipynb", (HOSTILE / "h01_loop_at_import.py").read_text())
    limits = {**Limits(timeout_s=30).__dict__, "masks": []}
    g = GraderProcess()
    record: dict = {}
    grading = threading.Thread(target=lambda: record.update(g.grade(Submission("mallory", str(nb), "ch03"), limits)))
    grading.start()
    deadline = time.monotonic() + 120
    while not any(g.sandboxes.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any(g.sandboxes.iterdir()), "the runner made no sandbox folder under the grader's sandbox root"
    g.proc.kill()  # as if the runner crashed while the student's loop runs
    grading.join(60)
    assert record["status"] == "error" and "not the student's fault" in record["problems"][0]
    assert not any(g.sandboxes.iterdir()), "the killed runner's sandbox folder was left behind"
    folders = (g.tmp, g.sandboxes)
    g.__exit__()
    assert not any(f.exists() for f in folders)
