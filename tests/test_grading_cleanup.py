"""Grading leaves no folders behind, even when a grader process has to be killed mid-submission."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tfmcourse.grading.intake import Submission
from tfmcourse.grading.jail import cgroup_dirs
from tfmcourse.grading.pool import GraderProcess, _alive
from tfmcourse.grading.sandbox import Limits
from tfmcourse.grading.testing import write_notebook

pytestmark = pytest.mark.ch03
HOSTILE = Path(__file__).parent / "hostile"


def test_killing_the_runner_mid_submission_leaves_no_folders(tmp_path):
    nb = write_notebook(tmp_path / "mallory" / "ch03_qkv.ipynb", (HOSTILE / "h01_loop_at_import.py").read_text())
    limits = Limits(timeout_s=30).__dict__
    g = GraderProcess()
    record: dict = {}
    grading = threading.Thread(target=lambda: record.update(g.grade(Submission("mallory", str(nb), "ch03"), limits)))
    grading.start()
    deadline = time.monotonic() + 120
    while not list(g.sandboxes.glob("*/worker.pid")) and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [int(f.read_text()) for f in g.sandboxes.glob("*/worker.pid")]
    assert pids, "the runner started no sandbox worker under the grader's sandbox root"
    g.proc.kill()  # as if the runner crashed while the student's loop runs
    grading.join(60)
    assert record["status"] == "error" and "not the student's fault" in record["problems"][0]
    assert not any(g.sandboxes.iterdir()), "the killed runner's sandbox folder was left behind"
    assert not any(_alive(pid) for pid in pids), "the worker outlived the runner that started it"
    assert not any(os.path.exists(d) for pid in pids for d in cgroup_dirs(pid).values()), "its cgroups were left"
    folders = (g.tmp, g.sandboxes)
    g.__exit__()
    assert not any(f.exists() for f in folders)


def test_stale_folders_of_dead_graders_are_swept(tmp_path):
    import os
    import subprocess
    import sys

    from tfmcourse.grading.pool import sweep_stale_folders

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid, live_pid = int(dead.stdout), os.getpid()
    folders = {name: tmp_path / name for name in (f"tfm-grader-{dead_pid}-old", f"tfm-sandboxes-{dead_pid}-old",
                                                   f"tfm-grader-{dead_pid}-fresh", f"tfm-grader-{live_pid}-old",
                                                   "tfm-grader-unrelated")}
    for name, d in folders.items():
        (d / "scratch0").mkdir(parents=True)
        if not name.endswith("fresh"):
            os.utime(d, (0, time.time() - 7200))  # untouched for two hours
    removed = sweep_stale_folders(tmp_path)
    assert sorted(p.name for p in removed) == [f"tfm-grader-{dead_pid}-old", f"tfm-sandboxes-{dead_pid}-old"]
    assert [n for n, d in folders.items() if d.exists()] == [f"tfm-grader-{dead_pid}-fresh",
                                                            f"tfm-grader-{live_pid}-old", "tfm-grader-unrelated"]
