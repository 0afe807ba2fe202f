"""tfmcourse grade PATH... [--chapter chNN] [--jobs N] [--out gradebook.csv] [--feedback DIR]

Grades one notebook, folders of submissions, or an LMS download (a zip or a flat folder from Canvas,
Moodle or Blackboard; nbgrader's submitted/ and zip_collect folders) with the chapter's hidden suite,
each submission in its own sandboxed worker, --jobs at a time (or on a Dask cluster with --scheduler).

Resumable: a student whose notebook already has a result in --results is skipped (--force regrades);
the gradebook and the feedback are rewritten after every student, atomically, so a run killed at any
moment and restarted ends the same. The gradebook lists exactly the submissions found under the given
paths (results of other students in the same --results folder are kept, not listed).

A link, folder or special file in place of a notebook is that student's rejection (0 points, a line
in their feedback); the rest of the class is graded. Exit status: 0, or 1 if the grader itself failed
on a submission (status error: re-run to retry), 2 for a usage error, 130 when interrupted.
"""
from __future__ import annotations

import argparse
import os
import queue
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

from .argtypes import positive

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    head, rest = __doc__.split("\n\n", 1)
    p = argparse.ArgumentParser(prog="tfmcourse grade", description=rest.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=rest.split("\n\n", 1)[1] + "\nThe security model: tfmcourse/grading/SECURITY.md.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="a notebook, a folder of submissions, or an LMS zip")
    p.add_argument("--chapter", help="chNN (default: read from the notebooks' file names)")
    p.add_argument("--jobs", "-j", type=positive(int), default=2, help="submissions graded at once (default 2)")
    p.add_argument("--out", help="CSV gradebook (default ./gradebook_chNN.csv)")
    p.add_argument("--results", help="per-student result JSON folder (default: results_chNN/ beside --out)")
    p.add_argument("--feedback", help="per-student Markdown feedback folder (default: feedback_chNN/ beside --out)")
    p.add_argument("--timeout", type=positive(float), default=10.0, help="seconds per check of a submission (default 10)")
    p.add_argument("--budget", type=positive(float), default=120.0,
                   help="seconds a submission may take in all, loading and checks (default 120)")
    p.add_argument("--memory", type=positive(int), default=3072, help="memory of a worker in MiB (default 3072)")
    p.add_argument("--cpu", type=positive(int), default=300, help="CPU seconds a worker may use in all (default 300)")
    p.add_argument("--no-namespaces", action="store_true", help="no bubblewrap sandbox (much weaker; see SECURITY.md)")
    p.add_argument("--force", action="store_true", help="regrade students that already have a result")
    p.add_argument("--scheduler", help="dask.distributed scheduler address: grade on that cluster")
    p.add_argument("--quiet", "-q", action="store_true", help="only print the summary")
    return p


def _grade_remote(sub: dict, data: bytes | None, files: list[bytes], limits: dict) -> dict:
    """Runs on a Dask worker (which needs tfmcourse and the hidden suites installed); the notebook's bytes
    (and the capstone's other notebooks) travel with the task."""
    from .intake import Submission
    from .pool import grade_submission

    with tempfile.TemporaryDirectory(prefix="tfm-intake-remote-") as tmp:
        if data is not None:
            copy = Path(tmp) / Path(sub["copy"]).name
            copy.write_bytes(data)
            sub = {**sub, "copy": str(copy)}
        extra = []
        for i, ((name, _), content) in enumerate(zip(sub["files"], files)):
            path = Path(tmp) / f"file{i}.ipynb"
            path.write_bytes(content)
            extra.append((name, str(path)))
        sub = {**sub, "flags": tuple(sub["flags"]), "notes": tuple(sub["notes"]), "files": tuple(extra)}
        return grade_submission(Submission(**sub), limits)


def _submit_all(todo: list, limits: dict, jobs: int, scheduler: str | None, attempts: dict):
    """Yield ``(submission, record)`` as they complete, locally or on a Dask cluster."""
    from .pool import GraderProcess

    if scheduler:
        try:
            from distributed import Client, as_completed as dask_completed
        except ImportError:
            raise SystemExit("tfmcourse grade: --scheduler needs dask.distributed (pip install 'tfmcourse[grading]' "
                             "or pip install distributed)") from None
        with Client(scheduler) as client:
            futures = {client.submit(_grade_remote, asdict(s), Path(s.copy).read_bytes() if s.copy else None,
                                     [Path(p).read_bytes() for _, p in s.files], limits, pure=False): s for s in todo}
            for fut in dask_completed(futures):
                yield futures[fut], fut.result()
        return
    free: queue.SimpleQueue = queue.SimpleQueue()
    graders = [GraderProcess() for _ in range(max(1, min(jobs, len(todo))))]
    for g in graders:
        free.put(g)

    def task(sub) -> dict:
        g = free.get()
        try:
            return g.grade(sub, limits, attempt=attempts.get(sub.key, 0) + 1)
        finally:
            free.put(g)

    pool = ThreadPoolExecutor(max_workers=len(graders))  # threads only wait on grader processes
    futures = {pool.submit(task, s): s for s in todo}
    try:
        for fut in as_completed(futures):
            yield futures[fut], fut.result()
    finally:
        for f in futures:
            f.cancel()
        for g in graders:
            g._kill()  # stops a runner mid-submission too (Ctrl-C); its sandbox goes with it
        pool.shutdown(wait=True)
        for g in graders:
            g.__exit__()


def _grade(a: argparse.Namespace, private: Path) -> int:
    from . import interfaces
    from .gradebook import (feedback_markdown, load_results, previous_attempts, result_is_current, write_gradebook,
                            write_text_atomic)
    from .intake import Intake
    from .pool import protect_from_oom
    from .runner import write_json_atomic
    from .sandbox import Limits, sandbox_mode

    protect_from_oom()
    intake = Intake(private)
    try:
        subs, chapter = intake.discover(a.paths, a.chapter)
    except (ValueError, KeyError) as e:
        print(f"tfmcourse grade: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    out = Path(a.out or f"gradebook_{chapter}.csv").resolve()
    results_dir = Path(a.results or out.parent / f"results_{chapter}").resolve()
    feedback_dir = Path(a.feedback or out.parent / f"feedback_{chapter}").resolve()
    for d in (results_dir, feedback_dir):
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    say = (lambda *m: None) if a.quiet else (lambda *m: print(*m, flush=True))
    for w in intake.warnings:
        say(f"warning: {w}")
    mode, _, sandbox_warnings = sandbox_mode(not a.no_namespaces)
    for w in sandbox_warnings:
        print(f"WARNING: weaker sandbox ({mode} mode): {w}", file=sys.stderr)
    limits = Limits(timeout_s=a.timeout, budget_s=a.budget, memory_mb=a.memory, cpu_s=a.cpu,
                    namespaces=not a.no_namespaces)
    keys = {s.key for s in subs}
    attempts = {s.key: previous_attempts(results_dir / f"{s.key}.json", s) for s in subs}
    todo = [s for s in subs if a.force or not result_is_current(results_dir / f"{s.key}.json", s)]
    rejected = sum(bool(s.rejected) for s in subs)
    say(f"{interfaces.get_chapter(chapter).id}: {len(subs)} submission(s) ({rejected} rejected), "
        f"{len(subs) - len(todo)} already graded, {len(todo)} to grade with {a.jobs} job(s)"
        f"{' on ' + a.scheduler if a.scheduler else ''}")
    t0, done = time.monotonic(), 0

    def publish() -> list[dict]:
        results = load_results(results_dir, chapter, keys)
        write_gradebook(out, results)
        return results

    for sub, record in _submit_all(todo, asdict(limits), a.jobs, a.scheduler, attempts):
        done += 1
        write_text_atomic(feedback_dir / f"{sub.key}.md", feedback_markdown(record))
        write_json_atomic(results_dir / f"{sub.key}.json", record)  # the commit point of this student
        publish()
        status = {"graded": "", "rejected": " (rejected: see feedback)"}.get(
            record["status"], " (grader error: will be retried)" if record.get("attempts", 1) < 2 else
            " (grader error twice: left for you, --force retries)")
        say(f"[{done}/{len(todo)}] {sub.student}: {record['score']:g}/{record['max_score']:g}{status} "
            f"({record.get('seconds', 0):.1f} s)")
    results = publish()
    for r in results:  # feedback for every result, also after an interrupted run
        write_text_atomic(feedback_dir / f"{r.get('key', r['student'])}.md", feedback_markdown(r))
    errors = [r["student"] for r in results if r["status"] == "error"]
    others = len(list(results_dir.glob("*.json"))) - len(results)
    print(f"graded {done} submission(s) in {time.monotonic() - t0:.1f} s; gradebook {out} ({len(results)} students"
          f"{f'; {others} other result(s) in {results_dir} not listed' if others > 0 else ''}); feedback in "
          f"{feedback_dir}" + (f"; grader errors: {', '.join(errors)}" if errors else ""))
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    private = Path(tempfile.mkdtemp(prefix=f"tfm-intake-{os.getpid()}-"))  # mode 0700: the class's notebooks
    try:
        return _grade(a, private)
    except KeyboardInterrupt:
        print("\ntfmcourse grade: interrupted; rerun the same command to continue (finished students are kept)",
              file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(private, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
