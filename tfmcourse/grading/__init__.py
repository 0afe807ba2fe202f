"""Grading: a chapter's hidden pytest suite run against a notebook, in a sandbox, with gradebook and feedback.

Pieces (each module's docstring has the details):

* :mod:`.interfaces` the registry: chapter id, title, slug and the names each chapter implements;
* :mod:`.impl` the ``impl`` API hidden suites use (``LocalImpl`` runs the reference in-process);
* :mod:`.sandbox` ``SandboxImpl``: a notebook loaded and driven in a jailed worker (:mod:`.jail`,
  :mod:`.worker`), with :mod:`.notebook` loading and :mod:`.wire` messages;
* :mod:`.pytest_plugin`, :mod:`.runner` the ``impl`` fixture, points, per-test results;
* :mod:`.gradebook`, :mod:`.cli` ``tfmcourse grade``: many submissions, resumable, CSV + feedback;
* :mod:`.checks` assertions with readable failure messages for suites.

From an nbgrader hidden-test cell (runs in the student's kernel, *not* sandboxed)::

    from tfmcourse.grading import nbgrader_check
    nbgrader_check("ch03", globals(), tests=["test_causal_mask"])   # raises AssertionError on failure

``tests`` takes test names (a name also selects its parametrised cases and the tests it prefixes) or
a pytest ``-k`` expression; omit it to run the whole chapter. Split a suite over several graded cells
for partial credit. The security model is in ``SECURITY.md`` next to this file.
"""
from __future__ import annotations

from typing import Any

__all__ = ["nbgrader_check", "nbgrader_points", "LocalImpl", "SandboxImpl", "CHAPTERS"]


def __getattr__(name: str) -> Any:  # lazy: the sandbox worker imports this package, keep it light
    if name in ("nbgrader_check", "nbgrader_points"):
        from . import nbgrader
        return getattr(nbgrader, name)
    if name == "LocalImpl":
        from .impl import LocalImpl
        return LocalImpl
    if name == "SandboxImpl":
        from .sandbox import SandboxImpl
        return SandboxImpl
    if name == "CHAPTERS":
        from .interfaces import CHAPTERS
        return CHAPTERS
    raise AttributeError(f"module 'tfmcourse.grading' has no attribute {name!r}")
