"""``tfmcourse grade PATH... [--chapter chNN] [--jobs N] [--out gradebook.csv] [--feedback DIR] [--timeout S]``

Grades one notebook or folders of submissions (layouts in :mod:`tfmcourse.grading.gradebook`) with the
chapter's hidden suite, each in its own sandboxed worker, ``--jobs`` at a time (or on a Dask cluster
with ``--scheduler ADDRESS``). Resumable: a student whose notebook already has a result in
``--results`` is skipped (``--force`` regrades); the gradebook and the feedback are rewritten from all
results after every student, atomically, so a run killed at any moment and restarted ends the same.
"""
from __future__ import annotations

import argparse
import queue
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

from . import interfaces
from .gradebook import (Submission, discover, feedback_markdown, load_results, result_is_current, write_gradebook,
                        write_text_atomic)
from .pool import GraderProcess, grade_submission
from .runner import write_json_atomic
from .sandbox import Limits

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tfmcourse grade", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("paths", nargs="+", metavar="PATH", help="a notebook, or a folder of submissions")
    p.add_argument("--chapter", help="chNN (default: read from the notebooks' file names)")
    p.add_argument("--jobs", "-j", type=int, default=2, help="submissions graded at once (default 2)")
    p.add_argument("--out", help="CSV gradebook (default ./gradebook_chNN.csv)")
    p.add_argument("--results", help="per-student result JSON folder (default: results_chNN/ beside --out)")
    p.add_argument("--feedback", help="per-student Markdown feedback folder (default: feedback_chNN/ beside --out)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per check of a submission (default 10)")
    p.add_argument("--memory", type=int, default=3072, help="address-space limit of a worker in MiB (default 3072)")
    p.add_argument("--cpu", type=int, default=300, help="CPU seconds a worker may use in all (default 300)")
    p.add_argument("--no-namespaces", action="store_true", help="do not use Linux namespaces (weaker sandbox)")
    p.add_argument("--force", action="store_true", help="regrade students that already have a result")
    p.add_argument("--scheduler", help="dask.distributed scheduler address: grade on that cluster")
    p.add_argument("--quiet", "-q", action="store_true", help="only print the summary")
    return p


def _grade_remote(sub: dict, limits: dict) -> dict:
    """Runs on a Dask worker (which needs tfmcourse and the hidden suites installed)."""
    return grade_submission(Submission(**sub), limits)


def _submit_all(todo: list[Submission], limits: dict, jobs: int, scheduler: str | None):
    """Yield ``(submission, record)`` as they complete, locally or on a Dask cluster."""
    if scheduler:
        try:
            from distributed import Client, as_completed as dask_completed
        except ImportError:
            raise SystemExit("tfmcourse grade: --scheduler needs dask.distributed (pip install 'tfmcourse[grading]' "
                             "or pip install distributed)") from None
        with Client(scheduler) as client:
            futures = {client.submit(_grade_remote, asdict(s), limits, pure=False): s for s in todo}
            for fut in dask_completed(futures):
                yield futures[fut], fut.result()
        return
    free: queue.SimpleQueue[GraderProcess] = queue.SimpleQueue()
    graders = [GraderProcess() for _ in range(max(1, min(jobs, len(todo))))]
    for g in graders:
        free.put(g)

    def task(sub: Submission) -> dict:
        g = free.get()
        try:
            return g.grade(sub, limits)
        finally:
            free.put(g)

    try:
        with ThreadPoolExecutor(max_workers=len(graders)) as pool:  # threads only wait on grader processes
            futures = {pool.submit(task, s): s for s in todo}
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
    finally:
        for g in graders:
            g.__exit__()


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        subs, chapter, warnings = discover(a.paths, a.chapter)
    except (ValueError, KeyError) as e:
        print(f"tfmcourse grade: {str(e).strip(chr(39))}", file=sys.stderr)
        return 2
    out = Path(a.out or f"gradebook_{chapter}.csv").resolve()
    results_dir = Path(a.results or out.parent / f"results_{chapter}").resolve()
    feedback_dir = Path(a.feedback or out.parent / f"feedback_{chapter}").resolve()
    for d in (results_dir, feedback_dir):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    say = (lambda *m: None) if a.quiet else (lambda *m: print(*m, flush=True))
    for w in warnings:
        say(f"warning: {w}")
    limits = Limits(timeout_s=a.timeout, memory_mb=a.memory, cpu_s=a.cpu, namespaces=not a.no_namespaces,
                    masks=sorted({str(out.parent), str(results_dir), str(feedback_dir),
                                  *(str(Path(p).resolve() if Path(p).is_dir() else Path(p).resolve().parent)
                                    for p in a.paths)}))
    todo = [s for s in subs if a.force or not result_is_current(results_dir / f"{s.student}.json", s)]
    say(f"{interfaces.get_chapter(chapter).id}: {len(subs)} submission(s), {len(subs) - len(todo)} already graded, "
        f"{len(todo)} to grade with {a.jobs} job(s){' on ' + a.scheduler if a.scheduler else ''}")
    t0, done = time.monotonic(), 0

    def publish() -> list[dict]:
        results = load_results(results_dir, chapter)
        write_gradebook(out, results)
        return results

    for sub, record in _submit_all(todo, asdict(limits), a.jobs, a.scheduler):
        done += 1
        write_text_atomic(feedback_dir / f"{sub.student}.md", feedback_markdown(record))
        write_json_atomic(results_dir / f"{sub.student}.json", record)  # the commit point of this student
        publish()
        say(f"[{done}/{len(todo)}] {sub.student}: {record['score']:g}/{record['max_score']:g}"
            f"{'' if record['status'] == 'graded' else ' (grader error: will be retried)'} ({record.get('seconds', 0):.1f} s)")
    results = publish()
    for r in results:  # feedback for every result, also after an interrupted run
        write_text_atomic(feedback_dir / f"{r['student']}.md", feedback_markdown(r))
    errors = [r["student"] for r in results if r["status"] != "graded"]
    elapsed = time.monotonic() - t0
    print(f"graded {done} submission(s) in {elapsed:.1f} s; gradebook {out} ({len(results)} students); "
          f"feedback in {feedback_dir}" + (f"; grader errors: {', '.join(errors)}" if errors else ""))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
