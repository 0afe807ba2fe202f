"""Name the mistake: compare what a submission answered with what known mistakes answer.

The mutant corpus (``tests/mutants/chNN/*.py``, each the reference with one realistic mistake and a
first docstring line saying which) is a library of mistakes. While a suite grades a submission, every
request and the submission's reply are recorded (:class:`Tracing`). :func:`diagnose` then replays the
same requests, on the trusted side, against the reference and against every mutant of the chapter, and
reports the mutants whose answers the submission's answers equal wherever that mistake shows:

* a probe *shows* mistake ``m`` when ``m``'s answer differs from the reference's;
* ``m`` *matches* when the submission answers like ``m`` on (nearly) every probe that shows ``m``, and
  explains probes where the submission differs from the reference;
* "exactly" when it matches on all of them and explains every probe the submission got wrong.

The failing tests are then grouped by the mistake that explains them. Nothing from the submission is
executed here: its answers are data from the trace, compared with ``allclose``.
"""
from __future__ import annotations

import ast
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import interfaces
from .impl import Impl, LocalImpl
from .wire import dumps

__all__ = ["Probe", "Tracing", "diagnose", "load_library", "same_reply", "current_test"]

_CURRENT: list[str] = [""]  # the test being run (set by the pytest plugin)
MATCH_AT_LEAST = 0.8  # of the probes that show a mistake, the share the submission must answer alike


def current_test(nodeid: str | None = None) -> str:
    """Get (or set, with ``nodeid``) the id of the hidden test now running."""
    if nodeid is not None:
        _CURRENT[0] = nodeid.split("::", 1)[-1]
    return _CURRENT[0]


@dataclass
class Probe:
    test: str
    request: dict
    reply: dict | None  # None: no answer (timeout, crash, garbage)


class Tracing(Impl):
    """An implementation that records every request and its reply (for :func:`diagnose`)."""

    def __init__(self, inner: Impl, trace: list[Probe]) -> None:
        self.inner, self.trace, self.chapter = inner, trace, inner.chapter

    def request(self, req: dict) -> dict:
        entry = Probe(current_test(), {k: v for k, v in req.items() if k != "id"}, None)
        self.trace.append(entry)
        reply = self.inner.request(req)
        entry.reply = reply
        return reply

    def report(self) -> dict:
        return self.inner.report()

    def close(self) -> None:
        self.inner.close()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return False
        if a.shape != b.shape or a.dtype != b.dtype:
            return False
        if not (a.is_floating_point() or a.is_complex()):
            return torch.equal(a, b)
        # float64 answers are compared tightly, so that a computation rounded to float32 shows as a mistake
        tol = {torch.float16: 2e-3, torch.bfloat16: 2e-2, torch.float64: 1e-10, torch.complex128: 1e-10}.get(a.dtype, 1e-5)
        return torch.allclose(a.double() if not a.is_complex() else a, b.double() if not b.is_complex() else b,
                              rtol=tol * 10, atol=tol, equal_nan=True)
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-7) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def same_reply(a: dict | None, b: dict | None) -> bool:
    """Whether two replies to one request are the same answer (values within tolerance, or the same error)."""
    if a is None or b is None or not isinstance(a, dict) or not isinstance(b, dict):
        return False
    if bool(a.get("ok")) != bool(b.get("ok")):
        return False
    if a.get("ok"):
        return _same(a.get("value"), b.get("value"))
    ea, eb = a.get("error") or {}, b.get("error") or {}
    return isinstance(ea, dict) and isinstance(eb, dict) and (ea.get("kind"), ea.get("type")) == (eb.get("kind"), eb.get("type"))


@dataclass
class Mistake:
    """A known mistake: its mutant file, what it is, and an implementation that makes it (its answers
    are cached by request: the suites ask every submission the same questions)."""

    mutant: str
    text: str
    names: list[str]
    impl: Impl = field(repr=False)
    answers: dict = field(default_factory=dict, repr=False)

    def answer(self, req: dict) -> dict | None:
        key = dumps(req)
        if key not in self.answers:
            try:
                self.answers[key] = self.impl.request(dict(req))
            except Exception:  # a mistake that crashes the grader's own replay is simply not comparable
                self.answers[key] = None
        return self.answers[key]


def _describe(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text())) or path.stem
    first = doc.strip().splitlines()[0]
    if first.lower().startswith("mutant ") and ":" in first:
        first = first.split(":", 1)[1].strip()
    return first.rstrip(".")


_LIBRARY: dict[tuple, list[Mistake]] = {}


def load_library(chapter: str) -> list[Mistake]:
    """The reference, then the chapter's known mistakes (only the reference without the course's
    ``tests/mutants``); cached per process."""
    from .testing import mutant_files, mutant_source, reference_source

    files = mutant_files(chapter)
    key = (chapter, tuple((p.name, p.stat().st_mtime_ns) for p in files))
    if key in _LIBRARY:
        return _LIBRARY[key]
    from .notebook import exec_cells, split_cells

    ch = interfaces.get_chapter(chapter)
    prelude, _ = interfaces.reference_namespace(interfaces.prerequisites(chapter))
    out = []
    for path in files:
        module, _ = exec_cells(split_cells(mutant_source(path)), prelude, module_name=f"known_{chapter}_{path.stem}")
        defined = {n.name for n in ast.parse(path.read_text()).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        out.append(Mistake(path.stem, _describe(path), sorted(defined & set(ch.names)) or sorted(defined),
                           LocalImpl(module.__dict__, chapter)))
    # the reference loaded exactly as the mutants are (the same notebook cells, minus the mistake), so that
    # helper names a notebook defines (ViTConfig, ...) exist on both sides
    module, _ = exec_cells(split_cells(reference_source(chapter)), prelude, module_name=f"known_{chapter}_reference")
    reference = Mistake("reference", "", [], LocalImpl(module.__dict__, chapter))
    for old in [k for k in _LIBRARY if k[0] == chapter]:  # an older version of this chapter's corpus
        del _LIBRARY[old]
    _LIBRARY[key] = [reference, *out]
    return _LIBRARY[key]


def _not_implemented(reply: dict | None) -> bool:
    err = (reply or {}).get("error") if isinstance(reply, dict) and not reply.get("ok") else None
    return isinstance(err, dict) and (err.get("kind") == "missing" or err.get("type") == "NotImplementedError")


def diagnose(chapter: str, trace: list[Probe], tests: list[dict], *, budget_s: float = 60.0,
             library: list[Mistake] | None = None) -> list[dict]:
    """Known mistakes the traced submission behaves like, best first.

    Returns:
        ``[{"mutant", "mistake", "names", "exact", "shown", "agreed", "tests"}]``: ``tests`` are the
        submission's failing tests that the mistake explains.
    """
    reference, *library = load_library(chapter) if library is None else library
    probes = [p for p in trace if p.reply is not None and p.request.get("op") not in ("names", "load")]
    failing = {t["id"] for t in tests if t["outcome"] not in ("passed", "skipped")}
    if not library or not probes or not failing:
        return []
    deadline = time.monotonic() + budget_s
    # probes of failing tests first: they decide which mistakes are candidates at all
    probes.sort(key=lambda p: p.test not in failing)
    ref = [reference.answer(p.request) for p in probes]
    # a request the reference itself cannot answer (the capstone's models are not in its namespace) compares nothing
    usable = [i for i, a in enumerate(ref) if a is not None and (a.get("ok") or (a.get("error") or {}).get("kind")
                                                                  not in ("missing", "interface"))]
    probes, ref = [probes[i] for i in usable], [ref[i] for i in usable]
    wrong = [i for i, p in enumerate(probes) if not same_reply(p.reply, ref[i])]
    if not wrong:
        return []
    # A release stub's "not implemented" answers are no mistake of any kind: they explain nothing.
    comparable = [i for i in wrong if not _not_implemented(probes[i].reply)]
    if not comparable:
        return []
    wrong_set, comparable_set = set(wrong), set(comparable)
    rest = [i for i in range(len(probes)) if i not in wrong_set]
    found = []
    for m in library:
        shown = agreed = 0
        explained: set[int] = set()
        for n, i in enumerate([*comparable, *rest]):
            if n == len(comparable) and not explained:
                break  # it answers none of the submission's wrong answers alike: no need to replay the rest
            if time.monotonic() > deadline:
                break
            p = probes[i]
            ans = m.answer(p.request)
            if same_reply(ans, ref[i]):
                continue
            shown += 1
            if same_reply(p.reply, ans):
                agreed += 1
                explained.add(i)
        if shown and agreed >= MATCH_AT_LEAST * shown and explained & comparable_set:
            tests_explained = sorted({probes[i].test for i in explained} & failing)
            found.append({"mutant": m.mutant, "mistake": m.text, "names": m.names,
                          "exact": agreed == shown and wrong_set <= explained, "shown": shown, "agreed": agreed,
                          "explains": len(explained & comparable_set), "tests": tests_explained})
    found.sort(key=lambda d: (not d["exact"], -d["explains"], -d["agreed"] / d["shown"], d["mutant"]))
    best = found[0]["explains"] if found else 0
    return [d for d in found if d["exact"] or d["explains"] >= 0.5 * best][:3]
