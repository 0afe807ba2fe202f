"""pytest glue for the hidden suites: the ``impl`` fixture, the ``points`` marker and the recorder.

``tests/hidden/conftest.py`` re-exports the hooks and the fixture from here. Which implementation a
suite tests, in order of precedence:

1. a provider installed by the grader (``install_provider``; used by ``tfmcourse grade`` and
   ``nbgrader_check``);
2. ``--submission PATH`` (or ``TFM_SUBMISSION=PATH``): that notebook in the sandbox;
3. the reference package, in-process (``pytest tests/hidden`` checks it scores 100 %).

The suite file's name gives its chapter (``test_ch03_qkv.py`` -> ``ch03``).
"""
from __future__ import annotations

import os
import re
from typing import Any, Callable

import pytest

from .impl import Impl, LocalImpl
from .wire import GradingError

__all__ = ["impl", "one_intra_op_thread", "pytest_addoption", "pytest_configure", "install_provider", "Recorder", "chapter_of_item"]

_PROVIDER = pytest.StashKey[Callable[[str], Impl]]()
_CACHE = pytest.StashKey[dict]()


@pytest.fixture(autouse=True, scope="module")
def one_intra_op_thread():
    """The suites' tensors are tiny: one intra-op thread is fastest, and two OpenMP threads per grader
    process oversubscribe a busy 2-core machine (a 16x64 matmul then takes ~30 ms instead of ~5 us)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tfmcourse grading")
    group.addoption("--submission", default=None, help="grade this notebook in the sandbox instead of the reference")
    group.addoption("--impl-timeout", type=float, default=10.0, help="seconds per request to a submission")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "points(n): points this hidden test is worth (default 1)")
    from .interfaces import GRADED
    known = {line.split(":")[0].strip() for line in config.getini("markers")}
    for ch in GRADED.values():
        if ch.id not in known:  # when the suites run outside the course repository (nbgrader)
            config.addinivalue_line("markers", f"{ch.id}: chapter {ch.number}, {ch.title}")


def install_provider(config: pytest.Config, provider: Callable[[str], Impl]) -> None:
    """Make every suite of this session test ``provider(chapter)``."""
    config.stash[_PROVIDER] = provider


def chapter_of_item(node: Any) -> str:
    m = re.search(r"test_(ch\d\d)_", os.path.basename(str(node.path)))
    if not m:
        raise pytest.UsageError(f"{node.path}: hidden suites are named test_chNN_<slug>.py")
    return m.group(1)


def _make(config: pytest.Config, chapter: str) -> Impl:
    if _PROVIDER in config.stash:
        return config.stash[_PROVIDER](chapter)
    path = config.getoption("--submission", default=None) or os.environ.get("TFM_SUBMISSION")
    if path:
        from .sandbox import Limits, SandboxImpl
        timeout = config.getoption("--impl-timeout", default=10.0) or 10.0
        return SandboxImpl(path, chapter, Limits(timeout_s=float(timeout)))
    return LocalImpl.reference(chapter)


@pytest.fixture(scope="module")
def impl(request: pytest.FixtureRequest) -> Impl:
    """The implementation under test for this suite's chapter (one per session and chapter)."""
    config = request.config
    cache = config.stash.setdefault(_CACHE, {})
    chapter = chapter_of_item(request.node)
    if chapter not in cache:
        cache[chapter] = _make(config, chapter)
        config.add_cleanup(cache[chapter].close)
    return cache[chapter]


def impls_of(config: pytest.Config) -> dict[str, Impl]:
    return dict(config.stash.get(_CACHE, {}))


def _reason(excinfo: pytest.ExceptionInfo | None) -> str:
    if excinfo is None:
        return ""
    exc = excinfo.value
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    if isinstance(exc, GradingError):
        return text[:600]
    if isinstance(exc, AssertionError):
        return (first or "assertion failed")[:600]
    return f"{type(exc).__name__}: {first}"[:600]


class Recorder:
    """Collects per-test outcome, points and a one-line reason (pass it in ``pytest.main(plugins=...)``)."""

    def __init__(self) -> None:
        self.tests: dict[str, dict] = {}
        self.config: pytest.Config | None = None

    def pytest_configure(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:  # after -k / -m deselection
            marker = item.get_closest_marker("points")
            points = float(marker.args[0]) if marker and marker.args else 1.0
            doc = (getattr(getattr(item, "function", None), "__doc__", None) or "").strip()
            self.tests[item.nodeid] = {"id": item.nodeid.split("::", 1)[-1], "title": doc.splitlines()[0] if doc else "",
                                       "max_points": points, "points": 0.0, "outcome": "not run", "reason": ""}

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        from .diagnose import current_test
        current_test(item.nodeid)  # requests made from here on belong to this test

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> Any:
        outcome = yield
        rep = outcome.get_result()
        entry = self.tests.get(item.nodeid)
        if entry is None:
            return
        if rep.when == "call" and rep.passed:
            entry.update(outcome="passed", points=entry["max_points"], reason="")
        elif rep.skipped:
            entry.update(outcome="skipped", points=0.0, reason=_reason(call.excinfo) if call.excinfo else "skipped")
        elif rep.failed and entry["outcome"] != "failed":
            entry.update(outcome="failed" if rep.when == "call" else "error", points=0.0, reason=_reason(call.excinfo))

    def result(self) -> dict:
        tests = list(self.tests.values())
        counted = [t for t in tests if t["outcome"] != "skipped"]
        reports = {ch: i.report() for ch, i in impls_of(self.config).items()} if self.config else {}
        return {"tests": tests, "score": sum(t["points"] for t in counted),
                "max_score": sum(t["max_points"] for t in counted), "reports": reports}
