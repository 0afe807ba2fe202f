"""Run a chapter's hidden suite from an nbgrader hidden-test cell, against the notebook's own definitions.

Each solution notebook ends with one graded cell (``nbgrader.grade: true``) whose points are the hidden
suite's points, split exactly as the suite splits them::

    ### BEGIN HIDDEN TESTS
    from tfmcourse.grading import nbgrader_points
    nbgrader_points("ch03", globals())
    ### END HIDDEN TESTS

:func:`nbgrader_points` prints one line per test and *returns* the points earned, which the cell shows as
its result: nbgrader takes a numeric result as partial credit, so a submission gets the same percentage
from ``nbgrader autograde`` as from ``tfmcourse grade`` (``python -m tfmcourse.exercises --sync-points``
keeps the cell's points equal to the suite's). :func:`nbgrader_check` is the all-or-nothing form (it
raises if a selected test fails), for cells that grade a subset (``tests=``).

The checks run in the notebook's own kernel, which nbgrader does not sandbox: a notebook that
monkeypatches ``torch`` could fool them. For untrusted submissions grade with ``tfmcourse grade``
(sandboxed) instead; see SECURITY.md.
"""
from __future__ import annotations

import contextlib
import os
import sys
import warnings
from typing import Any, Iterator, Mapping

from . import interfaces
from .impl import LocalImpl

__all__ = ["nbgrader_check", "nbgrader_points"]


def nbgrader_check(chapter: str, namespace: Mapping[str, Any], tests: str | list[str] | None = None,
                   *, verbose: bool = True) -> dict:
    """Run the hidden suite of ``chapter`` (or the ``tests`` subset) on ``namespace``; raise if any fails.

    Args:
        chapter: ``"ch03"``.
        namespace: the notebook's ``globals()``; the chapter's names are looked up there.
        tests: test function names (a prefix selects its parametrised cases too) or a ``-k`` expression.
        verbose: print a line per test.

    Returns:
        The result dict (``tests``, ``score``, ``max_score``) when every selected test passed.
    """
    from .runner import run_suite

    ch = interfaces.get_chapter(chapter)
    impl = LocalImpl(dict(namespace), ch.id)
    result = run_suite(ch.id, lambda _: impl, select=tests)
    ran = [t for t in result["tests"] if t["outcome"] != "skipped"]
    if verbose:
        for t in ran:
            mark = "ok  " if t["outcome"] == "passed" else "FAIL"
            print(f"{mark} {t['id']}" + (f": {t['reason']}" if t["outcome"] != "passed" else ""))
        print(f"{ch.id} hidden tests: {sum(t['outcome'] == 'passed' for t in ran)}/{len(ran)} passed, "
              f"{result['score']:g}/{result['max_score']:g} points")
    if not ran:
        raise AssertionError(f"no hidden test of {ch.id} matched {tests!r}")
    failed = [t for t in ran if t["outcome"] != "passed"]
    if failed:
        raise AssertionError(f"{len(failed)} hidden test(s) failed: " + "; ".join(f"{t['id']}: {t['reason']}" for t in failed))
    return result


@contextlib.contextmanager
def _no_stderr() -> Iterator[None]:
    """Silence stderr (Python's and the file descriptor's): nbgrader gives a cell 0 points for any."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stderr(null), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sys.stderr.flush()
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def nbgrader_points(chapter: str, namespace: Mapping[str, Any], *, verbose: bool = True) -> float:
    """Run the whole hidden suite of ``chapter`` on ``namespace`` and return the points earned.

    The return value is the cell's result, which nbgrader reads as partial credit; nothing is written to
    stderr (nbgrader would give the cell 0 for it), and nothing raises for a failing test.
    """
    from .runner import run_suite

    ch = interfaces.get_chapter(chapter)
    names = dict(namespace)
    if ch.capstone:  # the pieces the capstone's setup cell installed, and the models built from them
        from ..student import capstone_namespace
        names = {**capstone_namespace(), **names}
    impl = LocalImpl(names, ch.id)
    with _no_stderr():
        result = run_suite(ch.id, lambda _: impl)
    if verbose:
        for t in result["tests"]:
            mark = "ok  " if t["outcome"] == "passed" else "FAIL"
            print(f"{mark} {t['id']} ({t['points']:g}/{t['max_points']:g})"
                  + (f": {t['reason']}" if t["outcome"] != "passed" else ""))
        print(f"{ch.id} hidden tests: {result['score']:g}/{result['max_score']:g} points")
    return float(result["score"])
