"""Grader processes: trusted subprocesses that run hidden suites, one submission at a time.

A :class:`GraderProcess` keeps one ``python -m tfmcourse.grading.runner --serve`` alive and hands it
submissions; torch and pytest are imported once per process instead of once per submission. Each
submission still gets a fresh pytest session and a fresh sandbox worker. If the grader process dies or
overruns its time, that submission is recorded with ``status: "error"`` (retried on the next run) and
a new process is started for the next one. Processes are recycled after ``max_jobs`` submissions.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .intake import Submission
from .jail import cgroup_dirs
from .sandbox import SANDBOX_ROOT_ENV, remove_cgroups

__all__ = ["GraderProcess", "grade_submission", "sweep_stale_folders", "sweep_stale_cgroups", "protect_from_oom"]

STALE_AFTER_S = 3600.0  # a folder of a dead grader untouched this long is surely not in use


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def protect_from_oom(pid: int | str = "self") -> None:
    """Make a trusted process (the grader, its runners) the kernel's last choice when memory runs out;
    workers have the highest score (1000). Lowering a score needs root; otherwise nothing changes."""
    try:
        with open(f"/proc/{pid}/oom_score_adj", "w") as f:
            f.write("-500")
    except OSError:
        pass


def sweep_stale_folders(tmpdir: str | Path | None = None, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove the folders of grader processes that were killed (``kill -9`` of a whole grading run).

    Every :class:`GraderProcess` names its folders ``tfm-grader-<pid>-*`` and ``tfm-sandboxes-<pid>-*``
    after the process that made them. A folder is removed only if that process is gone and the folder
    has not changed for ``older_than_s`` seconds; returns what was removed.
    """
    root, now, removed = Path(tmpdir or tempfile.gettempdir()), time.time(), []
    for d in [*root.glob("tfm-grader-*-*"), *root.glob("tfm-sandboxes-*-*"), *root.glob("tfm-intake-*-*"),
              *root.glob("tfmcourse-stub-ch*-*")]:
        legacy = d.name.startswith("tfmcourse-stub-")  # world-readable copies left by older versions
        pid = d.name.split("-")[2]
        try:
            stale = d.stat().st_uid == os.getuid() and now - d.stat().st_mtime > older_than_s
        except OSError:
            continue
        if stale and (legacy or (pid.isdigit() and not _alive(int(pid)))):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def sweep_stale_cgroups() -> list[Path]:
    """Remove the empty cgroup folders of workers that are gone (left when a grader was killed).

    They sit next to where this process's workers would put theirs (``tfm-worker-<pid>``); a folder of
    a live worker is never touched, and one that still holds a process cannot be removed.
    """
    removed = []
    for parent in {Path(d).parent for d in cgroup_dirs(os.getpid()).values()}:
        for d in parent.glob("tfm-worker-*"):
            pid = d.name.rsplit("-", 1)[1]
            if pid.isdigit() and not _alive(int(pid)):
                try:
                    d.rmdir()
                    removed.append(d)
                except OSError:
                    pass
    return removed


class GraderProcess:
    """One long-lived grader subprocess; :meth:`grade` is not thread-safe (one caller at a time)."""

    def __init__(self, max_jobs: int = 50) -> None:
        self.max_jobs, self.jobs = max_jobs, 0
        self.proc: subprocess.Popen | None = None
        sweep_stale_folders()
        sweep_stale_cgroups()
        pid = os.getpid()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"tfm-grader-{pid}-"))  # log and results: private to the grader
        self.log_path = self.tmp / "grader.log"
        # The sandbox folders of this process's submissions, in one place, so that they can be removed
        # even when the runner had to be killed in the middle of a submission.
        self.sandboxes = Path(tempfile.mkdtemp(prefix=f"tfm-sandboxes-{pid}-"))  # 0700; see SandboxImpl for basic mode

    def _start(self) -> None:
        log = open(self.log_path, "ab")
        env = {**os.environ, SANDBOX_ROOT_ENV: str(self.sandboxes)}
        self.proc = subprocess.Popen([sys.executable, "-m", "tfmcourse.grading.runner", "--serve"], cwd=self.tmp,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env)
        log.close()
        protect_from_oom(self.proc.pid)
        self.jobs = 0

    def close(self) -> None:
        """Stop the runner (it finishes its job first, or is killed after 5 s) and clear its sandboxes."""
        if self.proc is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except Exception:
                pass
        self._kill()

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-800:].strip()
        except OSError:
            return ""

    def grade(self, sub: Submission, limits: dict, timeout: float | None = None, attempt: int = 1) -> dict:
        """Grade ``sub``; always returns a record (``status`` ``graded``, ``rejected`` or ``error``)."""
        t0 = time.monotonic()
        record = {"student": sub.student, "key": sub.key, "lms_id": sub.lms_id, "flags": list(sub.flags),
                  "chapter": sub.chapter, "notebook": sub.path, "sha256": sub.sha256, "status": "error",
                  "score": 0.0, "max_score": 0.0, "tests": [], "problems": list(sub.notes), "sandbox": {},
                  "attempts": attempt}
        if sub.rejected:
            record["rejected"] = sub.rejected
        timeout = timeout or (float(limits.get("budget_s", 120)) + 60
                              + 15 * (int(limits.get("max_restarts", 8)) + 1))
        if self.proc is None or self.proc.poll() is not None or self.jobs >= self.max_jobs:
            self.close()
            self._start()
        self.jobs += 1
        out = self.tmp / f"result-{self.jobs}.json"
        job = {"chapter": sub.chapter, "submission": sub.copy, "rejected": sub.rejected, "result": str(out),
               "limits": limits, "files": [list(f) for f in sub.files]}
        error = None
        try:
            self.proc.stdin.write((json.dumps(job) + "\n").encode())
            self.proc.stdin.flush()
            ready = select.select([self.proc.stdout], [], [], timeout)[0]
            line = self.proc.stdout.readline() if ready else b""
            reply = json.loads(line) if line else {"ok": False, "error": f"no answer within {timeout:.0f} s"}
            if not reply.get("ok"):
                error = reply.get("error", "unknown")
        except (OSError, ValueError) as e:
            error = f"{type(e).__name__}: {e}"
        if error is not None or not out.exists():
            self._kill()
            record["problems"].append(f"grader error (not the student's fault; re-run to retry): {error} "
                                      f"{self._log_tail()}")
            return record
        res = json.loads(out.read_text())
        os.unlink(out)
        report = next(iter(res.get("reports", {}).values()), {})
        record.update(status="graded" if res.get("tests") else "error", score=res["score"], max_score=res["max_score"],
                      tests=res["tests"], sandbox=report.get("sandbox", {}), seconds=round(time.monotonic() - t0, 2))
        record["problems"] += [p for p in report.get("problems", []) if p not in record["problems"]]
        if res.get("diagnosis"):
            record["diagnosis"] = res["diagnosis"]
        if res.get("grader_error") or report.get("fatal"):
            record.update(status="error", score=0.0)
            record["problems"].append(f"grader error: {(res.get('grader_error') or report['fatal'])[-800:]}")
        elif sub.rejected:
            record.update(status="rejected", score=0.0)
        return record

    def _kill(self) -> None:
        """Kill the runner if it still runs, and remove whatever sandbox it could not close."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        # A killed runner leaves the sandbox of its last submission: its worker dies with it (parent-death
        # signal); wait for that, then remove the worker's cgroups and folders.
        workers = [int(t) for f in self.sandboxes.glob("*/worker.pid") if (t := f.read_text().strip()).isdigit()]
        deadline = time.monotonic() + 10.0  # a busy machine can take seconds to reap a killed namespace
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid in workers:
            remove_cgroups(pid)
        for d in self.sandboxes.glob("*"):
            shutil.rmtree(d, ignore_errors=True)

    def __enter__(self) -> "GraderProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        shutil.rmtree(self.sandboxes, ignore_errors=True)


def grade_submission(sub: Submission, limits: dict, timeout: float | None = None) -> dict:
    """Grade one submission in a fresh grader process (what a Dask task runs)."""
    with GraderProcess() as g:
        return g.grade(sub, limits, timeout)
