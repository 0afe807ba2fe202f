"""The sandbox caps a worker's total memory and number of tasks with cgroups, where it may write them."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tfmcourse.grading import jail
from tfmcourse.grading.sandbox import Limits, SandboxImpl
from tfmcourse.grading.testing import reference_source, write_notebook

pytestmark = pytest.mark.ch03


def _v1_writable() -> bool:
    dirs = jail.cgroup_dirs(os.getpid())
    return os.geteuid() == 0 and "memory" in dirs and os.access(os.path.dirname(dirs["memory"]), os.W_OK)


def _fake_tree(root: Path, own: str) -> None:
    """A cgroup v2 layout as files: the controllers on offer and this process's cgroup folder."""
    (root / own.strip("/")).mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpu memory pids\n")


def test_folders_are_children_of_the_current_cgroup(tmp_path):
    own = next(line.split(":", 2)[2].strip() for line in open("/proc/self/cgroup") if line.startswith("0::"))
    _fake_tree(tmp_path, own)
    dirs = jail.cgroup_dirs(1234, root=str(tmp_path))
    assert dirs["v2"] == str(tmp_path) + own.rstrip("/") + "/tfm-worker-1234"


def test_v2_layout_gets_limits_and_the_process(tmp_path):
    own = next(line.split(":", 2)[2].strip() for line in open("/proc/self/cgroup") if line.startswith("0::"))
    _fake_tree(tmp_path, own)
    # A subprocess, so that only the fake tree is written: no real cgroup is touched.
    code = ("import json; from tfmcourse.grading import jail; "
            f"print(json.dumps(jail.join_cgroups(64, 5, root={str(tmp_path)!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    dirs = jail.cgroup_dirs(0, root=str(tmp_path))
    worker = Path(dirs["v2"]).parent / next(p.name for p in Path(dirs["v2"]).parent.iterdir() if p.is_dir())
    assert (worker / "memory.max").read_text() == str(64 * 2**20) and (worker / "pids.max").read_text() == "9"
    assert (worker / "cgroup.procs").read_text().isdigit()
    assert (worker.parent / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert out.strip() == '{"memory": true, "pids": true}'  # the fake root has no v1 hierarchies


@pytest.mark.skipif(not _v1_writable(), reason="needs root and writable cgroup v1 memory/pids hierarchies")
def test_caps_hold_for_all_processes_together():
    """Two processes of 60 MB each break a 96 MB cap that either alone respects; forks past the cap fail."""
    # jail.py loaded on its own, as the sandbox runs it: a small parent, so that the OOM killer's choice
    # falls on the 60 MB children rather than on a parent holding all of torch.
    code = textwrap.dedent(f"""
        import importlib.util, os, sys, time
        spec = importlib.util.spec_from_file_location("jail", {jail.__file__!r})
        jail = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(jail)
        print(jail.join_cgroups(96, 4), flush=True)
        kids = []
        for _ in range(8):
            try:
                pid = os.fork()
            except BlockingIOError:
                print("fork refused", flush=True)
                break
            if pid == 0:
                block = bytearray(60 * 2**20)
                for i in range(0, len(block), 4096):
                    block[i] = 1
                time.sleep(3)
                os._exit(0)
            kids.append(pid)
        killed = 0
        for pid in kids:
            _, status = os.waitpid(pid, 0)
            killed += os.WIFSIGNALED(status)
        print("children", len(kids), "killed", killed, flush=True)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    first, *rest = out.splitlines()
    assert first == "{'memory': True, 'pids': True}", out
    assert "fork refused" in rest, out  # pids.max = 4 + 4 tasks, this process included
    kids, killed = (int(w) for w in rest[-1].split()[1::2])
    assert kids >= 2 and killed >= 1, out  # the OOM killer took at least one of the 60 MB children
    for folder in jail.cgroup_dirs(0).values():  # tidy: the subprocess is gone, its folders are empty
        for f in Path(folder).parent.glob("tfm-worker-*"):
            try:
                f.rmdir()
            except OSError:
                pass


@pytest.mark.skipif(not _v1_writable(), reason="needs root and writable cgroup v1 memory/pids hierarchies")
def test_sandbox_worker_reports_its_caps_and_leaves_no_cgroup(tmp_path):
    impl = SandboxImpl(write_notebook(tmp_path / "probe" / "ch03_qkv.ipynb", reference_source("ch03")), "ch03",
                       Limits(timeout_s=30))
    try:
        impl.call("causal_mask", 2)
        info, pid = impl.report()["sandbox"], impl._proc.pid
    finally:
        impl.close()
    assert info["cgroups"] == {"memory": True, "pids": True}
    assert not any(os.path.exists(d) for d in jail.cgroup_dirs(pid).values())


@pytest.mark.skipif(not _v1_writable(), reason="needs root and writable cgroup v1 memory/pids hierarchies")
def test_empty_cgroups_of_dead_workers_are_swept():
    from tfmcourse.grading.pool import sweep_stale_cgroups

    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True).stdout)
    stale = [Path(d) for d in jail.cgroup_dirs(dead).values()]
    live = [Path(d) for d in jail.cgroup_dirs(os.getpid()).values()]
    for d in stale + live:
        d.mkdir()
    try:
        sweep_stale_cgroups()  # (a grader starting in another test process may sweep them first)
        assert not any(d.exists() for d in stale)
        assert all(d.exists() for d in live)  # a live process's folders stay
    finally:
        for d in stale + live:
            if d.exists():
                d.rmdir()
