"""The sandbox worker's loop: load a notebook, then answer requests, one frame in, one frame out.

Runs inside the jail (see :mod:`tfmcourse.grading.jail`) with the graded chapter stubbed out of its
``tfmcourse``. Messages go over the two pipe fds given at start, never over stdout/stderr (those go to a
capped file the grader does not parse). Frames it sends: ``{"hello": info}`` once; ``{"progress": i}``
before executing notebook cell ``i``; ``{"id": n, "ok": ..., ...}`` answering request ``n``.
Nothing the worker says is trusted: the grader only uses the values as the implementation's outputs.
"""
from __future__ import annotations

import os
import re
import signal
from typing import Any

__all__ = ["serve"]


def _prelude(chapter: str) -> tuple[dict[str, Any], list[str]]:
    from . import interfaces
    ns, missing = interfaces.reference_namespace(interfaces.prerequisites(chapter))
    return ns, [f"prerequisite {n} is missing from the reference package (grader set-up problem)" for n in missing]


_NOTEBOOK_NAME = re.compile(r"^ch\d\d_[a-z0-9_]+\.ipynb$")


def _write_files(files: Any) -> list[str]:
    """The capstone's other notebooks, into this worker's scratch folder (its working directory)."""
    problems = []
    for name, text in (files or {}).items():
        if not isinstance(name, str) or not isinstance(text, str) or not _NOTEBOOK_NAME.match(name):
            problems.append(f"{str(name)[:80]!r} was not used (not a chapter notebook name)")
            continue
        with open(name, "w", encoding="utf-8") as f:
            f.write(text)
    return problems


def _capstone_prelude() -> tuple[dict[str, Any], list[str]]:
    """The student's own pieces of every chapter, installed into tfmcourse (whose reference is stubbed out
    whole for the capstone), and the models built from them. The pieces themselves are in the namespace too
    (a stub where the student has none), so that a training request can use their ``param_groups`` and
    ``warmup_cosine_lr``, as the capstone's Trainer does."""
    from tfmcourse.student import assemble, capstone_namespace

    report = assemble(".", fallback_to_reference=False)
    problems = [str(p)[:300] for p in report.problems][:40]
    if report.missing:
        problems.append(f"not found in your chapter notebooks (the models cannot be built without them): "
                        f"{', '.join(report.missing)}")
    return capstone_namespace(), problems


def serve(rfd: int, wfd: int, chapter: str, info: dict) -> int:
    import torch

    from . import interfaces
    from .executor import execute
    from .notebook import Cell, exec_cells
    from .wire import read_frame, write_frame

    torch.set_num_threads(1)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # reap what the notebook forks (zombies count in RLIMIT_NPROC)
    main_pid = os.getpid()
    # In bubblewrap's PID namespace the only other processes are what the notebook started (bwrap's own
    # init, pid 1, is spared by kill(-1)); outside one (basic mode), kill(-1) would reach the grader's
    # other processes, so there the forked copies only stop at their next cell.
    own_pid_namespace = info.get("mode") in ("bwrap", "bwrap-userns")

    def after_student_code() -> None:
        # A process the notebook forked ends here instead of answering; the worker itself kills the
        # others (a fork bomb's copies), which would keep using its CPU and process slots while the
        # honest cells after them are graded.
        if os.getpid() != main_pid:
            os._exit(0)
        if own_pid_namespace:
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:  # nothing else is running
                pass

    def progress(cell: Cell) -> None:
        after_student_code()  # the previous cell's
        write_frame(wfd, {"progress": cell.index})

    write_frame(wfd, {"hello": info})
    if info.get("fatal"):
        return 1
    ns: dict[str, Any] = {}
    while True:
        try:
            req = read_frame(rfd)
        except (EOFError, OSError, ValueError):
            return 0
        if os.getpid() != main_pid:  # a process the notebook forked must not answer
            os._exit(0)
        rid = req.get("id")
        if req.get("op") == "load":
            cells = [Cell(int(i), str(src)) for i, src in req["cells"]]
            problems = _write_files(req.get("files"))
            if interfaces.get_chapter(chapter).capstone:
                prelude, more = _capstone_prelude()
            else:
                prelude, more = _prelude(chapter)
            problems += more
            module, cell_problems = exec_cells(
                cells, prelude, on_cell=progress)
            after_student_code()
            ns = module.__dict__
            names = list(interfaces.get_chapter(chapter).names)
            kinds = execute(ns, {"op": "names", "names": names}).get("value", {})
            reply = {"ok": True, "value": {"problems": problems + cell_problems, "kinds": kinds}}
        else:
            reply = execute(ns, req)
            after_student_code()
        try:
            write_frame(wfd, {"id": rid, **reply})
        except Exception as e:  # a value that cannot be sent: report that instead
            write_frame(wfd, {"id": rid, "ok": False, "error": {
                "kind": "student", "type": type(e).__name__, "where": "",
                "message": f"the result could not be sent back to the grader ({str(e)[:200]})"}})
