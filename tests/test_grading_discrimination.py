"""The hidden suites discriminate: reference 100 %, blank release 0, every mutant loses points.

Generic over chapters (every suite in tests/hidden, every mutant in tests/mutants/chNN/):

* in-process, fast: the reference package scores full marks; each mutant, loaded like a notebook
  (prerequisites from the reference), loses points;
* end to end through sandboxed grader processes (2 at a time, shared by all chapters): the reference
  as a notebook scores full marks, the blank release and the committed exercise notebook score 0, and
  the first mutant of each chapter scores exactly what it scores in-process (the sandbox changes
  nothing for honest code).
"""
from __future__ import annotations

import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tfmcourse.grading import interfaces
from tfmcourse.grading.intake import Submission
from tfmcourse.grading.impl import LocalImpl
from tfmcourse.grading.pool import GraderProcess
from tfmcourse.grading.runner import run_suite
from tfmcourse.grading.sandbox import REPO_DIR, Limits
from tfmcourse.grading.testing import (DO_NOTHING, MUTANT_TABLE, blank_source, chapters_with_suites,
                                       diagnose_in_process, grade_in_process, mutant_files, mutant_source,
                                       mutant_table, names_mutant, once_per_run, reference_source, stats_row,
                                       write_notebook)

SUITES = chapters_with_suites()
# A chapter's mutants are graded once (``_diagnosed``) and read by several tests: keep them on one xdist worker
# (make test runs ``--dist loadgroup``), so that no worker waits for another's grading.
MUTANTS = [pytest.param(ch, p, id=f"{ch}-{p.stem}", marks=pytest.mark.xdist_group(f"mutants-{ch}"))
           for ch in SUITES for p in mutant_files(ch)]
WITH_MUTANTS = [pytest.param(ch, marks=pytest.mark.xdist_group(f"mutants-{ch}")) for ch in SUITES if mutant_files(ch)]


def _exercise(ch: str) -> Path | None:
    path = REPO_DIR / "exercises" / f"{interfaces.get_chapter(ch).slug}.ipynb"
    return path if path.exists() else None


def _summary(result: dict) -> str:
    lines = [f"{result['score']:g}/{result['max_score']:g}", *result.get("problems", [])]
    lines += [f"{t['id']}: {t['outcome']} {t['reason']}" for t in result["tests"] if t["outcome"] != "passed"]
    return "\n".join(lines[:30])


@pytest.mark.parametrize("chapter", SUITES)
def test_reference_scores_full_marks_in_process(chapter):
    result = run_suite(chapter, lambda ch: LocalImpl.reference(ch))
    assert result["max_score"] > 0 and result["score"] == result["max_score"], \
        "the reference fails its own hidden suite:\n" + _summary(result)


def _diagnosed(tmp_path_factory, chapter: str) -> dict[str, dict]:
    """Every mutant of ``chapter`` graded in-process with the known-mistake diagnosis (once per run)."""
    def compute(_: Path) -> dict:
        out = {}
        for path in mutant_files(chapter):
            r = diagnose_in_process(chapter, mutant_source(path), module_name=f"mutant_{chapter}_{path.stem}")
            out[path.stem] = {"score": r["score"], "max_score": r["max_score"], "summary": _summary(r),
                              "reasons": [t["reason"] for t in r["tests"] if t["outcome"] != "passed"],
                              "failed": [t["id"] for t in r["tests"] if t["outcome"] != "passed"],
                              "diagnosis": r.get("diagnosis", []), "diagnosis_error": r.get("diagnosis_error")}
        return out
    return once_per_run(tmp_path_factory, f"mutants-{chapter}", compute)


@pytest.mark.parametrize("chapter,mutant", MUTANTS)
def test_mutant_loses_points(tmp_path_factory, chapter, mutant):
    r = _diagnosed(tmp_path_factory, chapter)[mutant.stem]
    assert r["max_score"] > 0 and 0 <= r["score"] < r["max_score"], \
        f"{mutant.name} ({mutant.read_text().splitlines()[0]}) scored full marks"
    assert r["reasons"] and all(r["reasons"]), "failed tests need a reason"


@pytest.mark.parametrize("chapter", WITH_MUTANTS)
def test_diagnosis_names_the_known_mistake(tmp_path_factory, chapter):
    """Graded like a submission, each mutant's feedback names its own mistake first (at least 80 %)."""
    results = _diagnosed(tmp_path_factory, chapter)
    wrong = {m: [x["mutant"] for x in r["diagnosis"]] or r["diagnosis_error"] for m, r in results.items()
             if not names_mutant(r["diagnosis"], m)}
    assert len(wrong) <= 0.2 * len(results), f"{len(wrong)}/{len(results)} misdiagnosed: {wrong}"


@pytest.mark.parametrize("chapter", WITH_MUTANTS)
def test_one_mistake_costs_few_tests(tmp_path_factory, chapter):
    """One idea per test: a single mistake fails a median of at most 3 tests of its chapter."""
    counts = sorted(len(r["failed"]) for r in _diagnosed(tmp_path_factory, chapter).values())
    assert statistics.median(counts) <= 3, f"failing tests per mutant: {counts}"


def _grade_sandboxed(root: Path) -> dict[str, dict]:
    """{"chNN/kind": result} for the reference, blank, release and first mutant of every chapter."""
    jobs: list[Submission] = []
    for ch in SUITES:
        slug = interfaces.get_chapter(ch).slug
        write_notebook(root / ch / "reference" / f"{slug}.ipynb", reference_source(ch))
        if not _exercise(ch):
            write_notebook(root / ch / "blank" / f"{slug}.ipynb", blank_source(ch))
        else:
            (root / ch / "release").mkdir()
            (root / ch / "release" / f"{slug}.ipynb").write_bytes(_exercise(ch).read_bytes())
        if mutant_files(ch):
            write_notebook(root / ch / "mutant" / f"{slug}.ipynb", mutant_source(mutant_files(ch)[0]))
        jobs += [Submission(d.name, str(d / f"{slug}.ipynb"), ch) for d in sorted((root / ch).iterdir())]
    limits = Limits(timeout_s=30).__dict__
    graders = [GraderProcess(), GraderProcess()]
    try:
        with ThreadPoolExecutor(2) as pool:
            done = pool.map(lambda gj: [(s, gj[0].grade(s, limits)) for s in gj[1]],
                            zip(graders, [jobs[0::2], jobs[1::2]]))
            return {f"{s.chapter}/{s.student}": r for part in done for s, r in part}
    finally:
        for g in graders:
            g.__exit__()


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory) -> dict[str, dict]:
    return once_per_run(tmp_path_factory, "grading-discrimination", _grade_sandboxed)


@pytest.mark.xdist_group("sandboxed")
@pytest.mark.parametrize("chapter", SUITES)
def test_reference_notebook_scores_full_marks_in_the_sandbox(sandboxed, chapter):
    r = sandboxed[f"{chapter}/reference"]
    assert r["status"] == "graded" and r["score"] == r["max_score"] > 0, _summary(r)
    assert r["sandbox"].get("mode") in ("bwrap", "bwrap-userns", "basic")


@pytest.mark.xdist_group("sandboxed")
@pytest.mark.parametrize("chapter", SUITES)
def test_blank_release_scores_zero(sandboxed, chapter):
    kind = "release" if _exercise(chapter) else "blank"
    r = sandboxed[f"{chapter}/{kind}"]
    assert r["status"] == "graded" and r["score"] == 0 and r["max_score"] > 0, f"{kind}: {_summary(r)}"


@pytest.mark.parametrize("chapter", SUITES)
@pytest.mark.parametrize("how", list(DO_NOTHING))
def test_doing_nothing_earns_nothing(chapter, how):
    """No points for stubs that only raise (any exception), return None or return their input."""
    r = grade_in_process(chapter, blank_source(chapter, DO_NOTHING[how]), module_name=f"nothing_{chapter}")
    assert r["max_score"] > 0 and r["score"] == 0, f"{how}: {_summary(r)}"


@pytest.mark.xdist_group("sandboxed")
@pytest.mark.parametrize("chapter", [ch for ch in SUITES if mutant_files(ch)])
def test_sandbox_grades_a_mutant_like_in_process(sandboxed, chapter):
    r = sandboxed[f"{chapter}/mutant"]
    first = mutant_files(chapter)[0]
    alone = grade_in_process(chapter, mutant_source(first), module_name=f"mutant_{chapter}_{first.stem}")
    assert r["status"] == "graded", _summary(r)
    assert [(t["id"], t["outcome"]) for t in r["tests"]] == [(t["id"], t["outcome"]) for t in alone["tests"]], \
        f"sandbox:\n{_summary(r)}\nin-process:\n{_summary(alone)}"


def test_the_guides_table_of_failing_tests_is_current(tmp_path_factory):
    """book/_generated/mutant_stats.md (shown in the instructor guide) matches a fresh grading of the corpus."""
    summary = {}
    for ch in (c for c in SUITES if mutant_files(c)):
        results = _diagnosed(tmp_path_factory, ch)
        summary[ch] = stats_row([len(r["failed"]) for r in results.values()],
                                [names_mutant(r["diagnosis"], m) for m, r in results.items()])
    assert MUTANT_TABLE.exists() and MUTANT_TABLE.read_text() == mutant_table(summary), \
        "the table is stale: run .venv/bin/python tools/mutant_stats.py --write"
