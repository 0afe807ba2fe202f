"""``SandboxImpl``: a submitted notebook, loaded and driven in a jailed worker process.

Failure policy (documented for instructors in SECURITY.md):

* a cell that raises is reported and loading goes on (see :mod:`~tfmcourse.grading.notebook`);
* a cell that hangs, exhausts memory or ends the process (``os._exit``) while loading: the worker is
  restarted and that cell is skipped, so the rest of the notebook still earns its points;
* a request that times out, crashes the worker or gets an unreadable reply fails that one test with a
  clear reason; the worker is restarted for the next test;
* once a name has failed that way twice, its remaining tests fail at once (no third wait), so other
  names still earn their points;
* after ``max_restarts`` restarts in all, every remaining test fails at once with the last reason.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import interfaces, stubs
from .impl import Impl
from .jail import cgroup_dirs
from .notebook import Cell, NotebookError, read_cells
from .wire import SandboxError, read_frame, write_frame

__all__ = ["Limits", "SandboxImpl", "REPO_DIR", "HIDDEN_DIR", "SANDBOX_ROOT_ENV", "remove_cgroups"]

JAIL = Path(__file__).with_name("jail.py")
REPO_DIR = stubs.PACKAGE_DIR.parent
HIDDEN_DIR = REPO_DIR / "tests" / "hidden"
# Parent folder for the sandboxes' folders (set by GraderProcess, so it can remove what a killed runner left).
SANDBOX_ROOT_ENV = "TFM_SANDBOX_ROOT"


@dataclass
class Limits:
    """Per-worker limits. ``timeout_s`` bounds each request (wall clock), ``load_timeout_s`` the
    notebook's cells together; ``cpu_s`` is the worker's CPU budget for its whole life."""

    timeout_s: float = 10.0
    load_timeout_s: float | None = None  # default: 3 x timeout_s
    startup_timeout_s: float = 120.0  # importing torch in the worker; not the student's time
    cpu_s: int = 300
    memory_mb: int = 3072
    output_mb: int = 1
    scratch_mb: int = 64
    nproc: int = 16
    max_restarts: int = 8
    max_failures_per_name: int = 2
    namespaces: bool = True
    masks: list[str] = field(default_factory=list)  # extra folders to hide from the worker


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


def _repo_masks() -> list[Path]:
    """The course repository (hidden suites, solutions, .git) when running from a checkout, and the
    hidden-suite folder in any case."""
    hidden = Path(os.environ.get("TFM_HIDDEN_TESTS") or HIDDEN_DIR)
    is_checkout = (REPO_DIR / "pyproject.toml").exists() or (REPO_DIR / ".git").exists()
    return [REPO_DIR, hidden] if is_checkout else [hidden]


def remove_cgroups(pid: int) -> None:
    """Remove the cgroup folders of the (dead) worker started as ``pid``; a folder empties as its last
    process is reaped, so try a few times."""
    for folder in cgroup_dirs(pid).values():
        for _ in range(20):
            try:
                os.rmdir(folder)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid`` (a worker's own uid, never a system one)."""
    if uid < 1_000_000 or os.geteuid() != 0:
        return
    for _ in range(3):
        found = False
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/status") as f:
                    owned = any(ln.startswith("Uid:") and int(ln.split()[1]) == uid for ln in f)
                if owned:
                    found = True
                    os.kill(int(entry.name), signal.SIGKILL)
            except (OSError, ValueError):
                continue
        if not found:
            return
        time.sleep(0.01)


class SandboxImpl(Impl):
    """Grade ``notebook`` for ``chapter`` through a jailed worker (started on the first request)."""

    def __init__(self, notebook: str | Path, chapter: str, limits: Limits | None = None) -> None:
        self.notebook, self.chapter = Path(notebook), interfaces.get_chapter(chapter).id
        self.limits = limits or Limits()
        self.problems: list[str] = []
        self.kinds: dict[str, str] = {}
        self.info: dict = {}
        self.dead: str | None = None
        self.fatal: str | None = None  # a grader set-up problem: the result must not count
        self.restarts, self._next_id, self._skip = 0, 0, set()
        self._failures: dict[str, int] = {}
        self._proc: subprocess.Popen | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="tfm-sandbox-", dir=os.environ.get(SANDBOX_ROOT_ENV) or None))
        os.chmod(self._dir, 0o711)  # the worker may pass through to its scratch, not list it
        try:
            self.cells: list[Cell] = read_cells(self.notebook)
        except NotebookError as e:
            self.cells, self.dead = [], str(e)
            self.problems.append(str(e))

    # -- process management -----------------------------------------------------------------------
    def _spawn(self) -> None:
        scratch = self._dir / f"scratch{self.restarts}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700)
        up_r, up_w = os.pipe()  # grader -> worker
        down_r, down_w = os.pipe()  # worker -> grader
        lim = self.limits
        cfg = {"fds": [up_r, down_w], "scratch": str(scratch), "chapter": self.chapter, "grader_pid": os.getpid(),
               "stub_package": str(stubs.stubbed_package(self.chapter)), "package_dir": str(stubs.PACKAGE_DIR),
               "namespaces": lim.namespaces, "limits": {"cpu_s": lim.cpu_s, "memory_mb": lim.memory_mb,
                                                        "output_mb": lim.output_mb, "nproc": lim.nproc,
                                                        "scratch_mb": lim.scratch_mb},
               "masks": [str(p) for p in (*_repo_masks(), self.notebook.resolve().parent, "/tmp", "/var/tmp",
                                          "/dev/shm", "/root", "/home", *lim.masks)]}
        out = open(self._dir / "output.txt", "ab")
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")}
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
        try:
            self._proc = subprocess.Popen([sys.executable, "-I", str(JAIL), json.dumps(cfg)], stdin=subprocess.DEVNULL,
                                          stdout=out, stderr=out, pass_fds=(up_r, down_w), cwd=str(self._dir),
                                          env=env, start_new_session=True)
        finally:
            out.close()
            os.close(up_r)
            os.close(down_w)
        self._w, self._r = up_w, down_r
        (self._dir / "worker.pid").write_text(str(self._proc.pid))  # for cleaning up if this process is killed
        hello = self._read(time.monotonic() + lim.startup_timeout_s, "starting the sandbox")
        self.info = hello.get("hello", {}) if isinstance(hello, dict) else {}
        if self.info.get("fatal"):
            self.dead = self.fatal = f"grader set-up problem (not the student's fault): {self.info['fatal']}"
            self._kill()
            raise SandboxError(self.dead)

    def _kill(self) -> str:
        """Kill the worker (and its whole namespace / process group); describe how it ended."""
        proc, self._proc = self._proc, None
        if proc is None:
            return ""
        for fd in (self._w, self._r):
            try:
                os.close(fd)
            except OSError:
                pass
        code = proc.poll()
        if code is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        _kill_uid(1_000_000 + proc.pid)  # whatever escaped the process group (setsid, cleared pdeathsig)
        remove_cgroups(proc.pid)
        if code is None:
            return ""
        if code < 0 or code > 128:
            sig = -code if code < 0 else code - 128
            hint = {signal.SIGKILL: " (memory or CPU limit?)", signal.SIGXCPU: " (CPU time limit)",
                    signal.SIGSEGV: " (crash)", signal.SIGABRT: " (abort: often out of memory)"}.get(sig, "")
            return f"killed by {_signal_name(sig)}{hint}"
        return f"exited with status {code} (sys.exit / os._exit in the notebook?)"

    def _read(self, deadline: float, doing: str) -> Any:
        try:
            return read_frame(self._r, deadline)
        except TimeoutError:
            self._kill()
            raise SandboxError(f"{doing} took longer than the time limit "
                               f"({max(0.0, deadline - self._t0):.0f} s): an infinite loop, or far too slow") from None
        except EOFError:
            time.sleep(0.05)
            how = self._kill() or "ended"
            raise SandboxError(f"the process running the notebook {how} while {doing}") from None
        except ValueError as e:
            self._kill()
            raise SandboxError(f"the process running the notebook sent {e} while {doing}") from None

    def _roundtrip(self, req: dict, timeout: float, doing: str, on_progress: Any = None) -> dict:
        self._t0 = time.monotonic()
        deadline = self._t0 + timeout
        self._next_id += 1
        rid = req["id"] = self._next_id
        try:
            write_frame(self._w, req)
        except OSError:
            how = self._kill() or "ended"
            raise SandboxError(f"the process running the notebook {how} before {doing}") from None
        while True:
            msg = self._read(deadline, doing)
            if not isinstance(msg, dict):
                continue
            if "progress" in msg and on_progress is not None:
                on_progress(msg["progress"])
            elif msg.get("id") == rid:
                return msg

    def _start(self) -> None:
        """Spawn and load the notebook, skipping cells that hang or kill the worker (with a problem noted)."""
        lim = self.limits
        while True:
            self._t0 = time.monotonic()
            try:
                self._spawn()
            except SandboxError as e:  # no student code has run yet: a grader problem
                if not self.fatal:
                    self.dead = self.fatal = f"grader set-up problem (not the student's fault): {e}"
                raise SandboxError(self.dead) from None
            current: list[int] = []
            cells = [(c.index, c.source) for c in self.cells if c.index not in self._skip]
            try:
                reply = self._roundtrip({"op": "load", "cells": cells}, lim.load_timeout_s or 3 * lim.timeout_s,
                                        "loading the notebook", current.append)
            except SandboxError as e:
                if self.fatal:
                    raise
                bad = current[-1] if current else None
                self.restarts += 1
                if bad is None or bad in self._skip or self.restarts > lim.max_restarts:
                    self.dead = f"the notebook could not be loaded: {e}"
                    self.problems.append(self.dead)
                    raise SandboxError(self.dead) from None
                cell = next(c for c in self.cells if c.index == bad)
                self._skip.add(bad)
                self.problems.append(f"cell {bad} (`{cell.first_line()}`) was skipped: {e}")
                continue
            value = reply.get("value") if isinstance(reply.get("value"), dict) else {}
            if not self.kinds:  # the first complete load is the one reported
                self.problems += [str(p)[:500] for p in value.get("problems", [])][:50]
                self.kinds = {str(k): str(v) for k, v in (value.get("kinds") or {}).items()}
                self.problems += [f"{n} is not defined in the notebook: its tests score 0"
                                  for n, k in self.kinds.items() if k == "missing"]
            return

    # -- Impl -------------------------------------------------------------------------------------------
    def request(self, req: dict) -> dict:
        if self.dead:
            raise SandboxError(self.dead)
        name = str(req.get("name", req.get("op")))
        if self._failures.get(name, 0) >= self.limits.max_failures_per_name:
            raise SandboxError(f"{name} was stopped {self._failures[name]} times already (timeout or crash): "
                               f"its remaining tests are not run")
        if self._proc is None:
            self._start()
        try:
            return self._roundtrip(dict(req), self.limits.timeout_s, f"running {name}")
        except SandboxError as e:
            self.restarts += 1
            self._failures[name] = self._failures.get(name, 0) + 1
            if self.restarts > self.limits.max_restarts:
                self.dead = f"{e} (and gave up after {self.limits.max_restarts} restarts)"
            raise

    def report(self) -> dict:
        return {"problems": list(self.problems), "kinds": dict(self.kinds), "sandbox": dict(self.info), "fatal": self.fatal,
                "restarts": self.restarts, "limits": asdict(self.limits)}

    def close(self) -> None:
        self._kill()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __del__(self) -> None:  # best effort: never leave a worker behind
        try:
            self.close()
        except Exception:
            pass
