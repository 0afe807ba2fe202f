"""Run a chapter's hidden suite against one implementation with pytest, in the trusted grader.

:func:`run_suite` calls ``pytest.main`` in this process with a :class:`~.pytest_plugin.Recorder`; the
grader runs it in grader subprocesses (``python -m tfmcourse.grading.runner --serve``, one pytest
session per submission, see :mod:`.pool`), never in the process that writes the gradebook. The result
JSON is written atomically to a path the sandboxed worker cannot see.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

from . import interfaces
from .impl import Impl

__all__ = ["run_suite", "suite_path", "suite_points", "write_json_atomic", "main"]


def suite_path(chapter: str) -> Path:
    """``tests/hidden/test_chNN_<slug>.py`` (``TFM_HIDDEN_TESTS`` may point at another folder)."""
    from .sandbox import HIDDEN_DIR
    ch = interfaces.get_chapter(chapter)
    folder = Path(os.environ.get("TFM_HIDDEN_TESTS") or HIDDEN_DIR)
    path = folder / ch.suite_file()
    if not path.exists():
        raise FileNotFoundError(f"no hidden suite for {ch.id} at {path}; the grader needs the course repository's "
                                f"tests/hidden (or set TFM_HIDDEN_TESTS)")
    return path


def write_json_atomic(path: str | Path, data: dict) -> None:
    """Write JSON to a temp file in the same folder (mode 0600), then ``os.replace`` it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def run_suite(chapter: str, provider: Callable[[str], Impl] | None = None, *, select: str | list[str] | None = None,
              verbose: bool = False, diagnose: bool = False) -> dict:
    """Run the hidden suite of ``chapter`` against ``provider(chapter)`` (default: the conftest's choice).

    Args:
        select: test names (a list, joined with ``or``) or a ``-k`` expression; ``None`` runs all.
        verbose: let pytest print; otherwise its output is swallowed.
        diagnose: record the implementation's answers and, if it lost points, name the known mistakes
            they match (:mod:`.diagnose`) in ``result["diagnosis"]``.

    Returns:
        ``{"tests": [...], "score", "max_score", "reports", "exit_code"}`` (and ``"diagnosis"``).
    """
    import pytest

    from .pytest_plugin import Recorder, install_provider

    recorder = Recorder()
    plugins: list = [recorder]
    trace: list = []
    if diagnose:
        from .diagnose import Tracing
        if provider is None:
            from .impl import LocalImpl
            provider = LocalImpl.reference
        inner_provider = provider
        provider = lambda ch: Tracing(inner_provider(ch), trace)  # noqa: E731
    if provider is not None:
        class _Provide:
            @pytest.hookimpl(trylast=True)
            def pytest_configure(self, config: pytest.Config) -> None:
                install_provider(config, provider)
        plugins.append(_Provide())
    args = [str(suite_path(chapter)), "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:xdist", "-q", "--no-header", "--capture=sys",
            "-p", "no:unraisableexception", "-p", "no:threadexception",  # their gc.collect() per session doubles its time
            "-W", "ignore::DeprecationWarning", "-o", "addopts=--strict-markers"]
    if select:
        args += ["-k", select if isinstance(select, str) else " or ".join(select)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out if not verbose else sys.stdout):
        code = pytest.main(args, plugins=plugins)
    result = recorder.result()
    result["exit_code"] = int(code)
    if diagnose and result["tests"] and result["score"] < result["max_score"]:
        from .diagnose import diagnose as name_mistakes
        try:
            result["diagnosis"] = name_mistakes(chapter, trace, result["tests"])
        except Exception as e:  # a diagnosis is a bonus: never let it cost a grade
            result["diagnosis_error"] = f"{type(e).__name__}: {e}"[:500]
    if not result["tests"] and int(code) not in (0, 5):
        result["grader_error"] = out.getvalue()[-3000:]
    return result


def suite_points(chapter: str) -> dict[str, float]:
    """``{test id: points}`` of a chapter's hidden suite, collected without running anything."""
    import pytest

    from .pytest_plugin import Recorder

    recorder = Recorder()
    args = [str(suite_path(chapter)), "--collect-only", "-p", "no:cacheprovider", "-p", "no:randomly",
            "-p", "no:xdist", "-q", "-o", "addopts=--strict-markers"]
    with contextlib.redirect_stdout(io.StringIO()):
        code = pytest.main(args, plugins=[recorder])
    if code not in (0,):
        raise RuntimeError(f"collecting the {chapter} suite failed (pytest exit {code})")
    return {t["id"]: t["max_points"] for t in recorder.tests.values()}


def serve() -> int:
    """Grade jobs read as JSON lines on stdin (``chapter``, ``submission``, ``result``, ``limits``), one
    pytest session each, answering one JSON line per job on the original stdout. Used by
    :class:`~tfmcourse.grading.pool.GraderProcess` so torch and pytest are imported once per grader
    process rather than once per submission; every submission still gets its own sandbox worker."""
    from .sandbox import Limits, SandboxImpl

    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything else printed goes to the log, never into the replies
    for line in sys.stdin:
        job = json.loads(line)
        try:
            limits = Limits(**job["limits"])
            result = run_suite(job["chapter"], lambda ch: SandboxImpl(job["submission"], ch, limits,
                                                                      rejected=job.get("rejected", ""),
                                                                      files=[tuple(f) for f in job.get("files", [])]),
                               diagnose=not job.get("rejected"))
            write_json_atomic(job["result"], result)
            reply.write(json.dumps({"ok": True}) + "\n")
        except Exception as e:  # a grader bug: report it, keep serving
            reply.write(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"[:2000]}) + "\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--serve"]:
        return serve()
    p = argparse.ArgumentParser(prog="python -m tfmcourse.grading.runner", description=__doc__.split("\n\n")[0])
    p.add_argument("--chapter", required=True)
    p.add_argument("--submission", help="notebook to grade in the sandbox (default: the reference, in-process)")
    p.add_argument("--result", required=True, help="where to write the result JSON")
    p.add_argument("--limits", default="{}", help="JSON of sandbox Limits fields")
    p.add_argument("--select", default=None, help="-k expression")
    a = p.parse_args(argv)
    provider = None
    if a.submission:
        from .sandbox import Limits, SandboxImpl
        limits = Limits(**json.loads(a.limits))
        provider = lambda ch: SandboxImpl(a.submission, ch, limits)  # noqa: E731
    result = run_suite(a.chapter, provider, select=a.select)
    write_json_atomic(a.result, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
