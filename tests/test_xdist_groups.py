"""``make test`` relies on ``--dist loadgroup``: the tests that share one grading run (a chapter's mutants,
the hostile class, the capstone ...) must land on one worker, or the other worker idles on the shared
run's lock. pytest-xdist adds the group to each node id; some pytest releases ignore that (9.2), which
spreads the groups silently and costs minutes. This checks the installed pair does group."""
from __future__ import annotations

import subprocess
import sys
from collections import defaultdict

import pytest

pytest.importorskip("xdist")

SAMPLE = '''
import os
import pytest

pytestmark = pytest.mark.xdist_group("shared")

@pytest.mark.parametrize("i", range(6))
def test_grouped(i):
    print("WORKER", os.environ["PYTEST_XDIST_WORKER"])

@pytest.mark.parametrize("i", [pytest.param(i, marks=pytest.mark.xdist_group("by_param")) for i in range(6)])
def test_grouped_by_param(i):
    pass
'''


def test_loadgroup_keeps_each_group_on_one_worker(tmp_path):
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p", "no:cacheprovider",
         "-c", "/dev/null", "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    workers = defaultdict(set)
    for line in out.stdout.splitlines():
        if "PASSED" in line and line.startswith("[gw"):
            worker = line.split("]")[0].strip("[")
            test = line.split("PASSED", 1)[1].strip().split("[")[0]
            workers[test].add(worker)
    assert set(workers) == {"test_sample.py::test_grouped", "test_sample.py::test_grouped_by_param"}, out.stdout
    spread = {t: w for t, w in workers.items() if len(w) > 1}
    assert not spread, (f"--dist loadgroup spread grouped tests over workers {spread}: this pytest / "
                        f"pytest-xdist pair does not group (see the pin in pyproject.toml)")
