"""Benchmark ``tfmcourse grade`` (not a test): 30 generated ch03 submissions, 2 jobs, seconds per submission.

    .venv/bin/python tools/bench_grading.py [--n 30] [--jobs 2] [--chapter ch03]

The submissions mix the reference as a notebook, the blank release and the mutants of
tests/mutants/<chapter>/, in a temporary folder. Prints the wall time, seconds per submission and
the sandbox mode, and checks the scores came out as expected (reference full, blank zero).
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

from tfmcourse.grading import cli
from tfmcourse.grading.testing import blank_source, mutant_files, mutant_source, reference_source, write_notebook


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=30, help="number of submissions (default 30)")
    p.add_argument("--jobs", type=int, default=2, help="parallel jobs (default 2)")
    p.add_argument("--chapter", default="ch03")
    a = p.parse_args(argv)
    sources = [("ref", reference_source(a.chapter)), ("blank", blank_source(a.chapter))]
    sources += [(m.stem, mutant_source(m)) for m in mutant_files(a.chapter)]
    with tempfile.TemporaryDirectory(prefix="tfm-bench-") as tmp:
        subs = Path(tmp) / "subs"
        kinds = {}
        for i in range(a.n):
            kind, src = sources[i % len(sources)]
            student = f"s{i:03d}_{kind}"
            write_notebook(subs / student / f"{a.chapter}_bench.ipynb", src)
            kinds[student] = kind
        out = Path(tmp) / "gradebook.csv"
        t0 = time.perf_counter()
        code = cli.main([str(subs), "--chapter", a.chapter, "--jobs", str(a.jobs), "--out", str(out), "-q"])
        wall = time.perf_counter() - t0
        rows = list(csv.DictReader(out.open()))
    bad = [r["student"] for r in rows if (kinds[r["student"]] == "ref" and r["percent"] != "100.0")
           or (kinds[r["student"]] == "blank" and r["score"] != "0")]
    print(f"graded {len(rows)} submissions of {a.chapter} with --jobs {a.jobs} on {os.cpu_count()} CPU(s): "
          f"{wall:.1f} s wall, {wall / max(1, len(rows)):.2f} s per submission"
          f"{'; unexpected scores: ' + ', '.join(bad) if bad else ''}")
    return code or (1 if bad else 0)


if __name__ == "__main__":
    sys.exit(main())
