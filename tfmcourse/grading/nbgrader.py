"""Run a chapter's hidden suite from an nbgrader hidden-test cell, against the notebook's own definitions.

In a solution notebook, a graded test cell (``nbgrader.grade: true``, some points) holds::

    ### BEGIN HIDDEN TESTS
    from tfmcourse.grading import nbgrader_check
    nbgrader_check("ch03", globals(), tests=["test_causal_mask_square", "test_causal_mask_rectangular"])
    ### END HIDDEN TESTS

It prints one line per test and raises ``AssertionError`` if any selected test failed, so nbgrader gives
the cell's points all or nothing; split a chapter's suite over several cells (``tests=``: test names or
name prefixes, or a ``-k`` expression string) for partial credit. The checks run in the notebook's own
kernel, which nbgrader does not sandbox: a notebook that monkeypatches ``torch`` could fool them. For
untrusted submissions grade with ``tfmcourse grade`` (sandboxed) instead; see SECURITY.md.
"""
from __future__ import annotations

from typing import Any, Mapping

from . import interfaces
from .impl import LocalImpl

__all__ = ["nbgrader_check"]


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
