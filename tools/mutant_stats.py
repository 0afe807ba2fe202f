#!/usr/bin/env python
"""How many hidden tests each single-mistake mutant fails, per chapter (one mistake should cost one idea).

    .venv/bin/python tools/mutant_stats.py ch03 [ch04 ...]      # default: every chapter with a suite
    .venv/bin/python tools/mutant_stats.py ch03 -v              # also list the failing tests
    .venv/bin/python tools/mutant_stats.py ch08                 # the capstone (not in the default list)

Prints, per mutant, its score and the number of failing tests; per chapter the median and maximum.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile

from tfmcourse.grading.testing import MUTANT_TABLE as TABLE
from tfmcourse.grading.interfaces import get_chapter
from tfmcourse.grading.testing import (capstone_mutant_stats, chapters_with_suites, mutant_stats, mutant_table,
                                       stats_row)


def _capstone_rows() -> list[dict]:
    """The capstone's mutants are folders of notebooks (see capstone_mutant_stats)."""
    with tempfile.TemporaryDirectory(prefix="tfm-capstone-mutants-") as folder:
        return capstone_mutant_stats(folder)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("chapters", nargs="*")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--write", action="store_true", help=f"also write the per-chapter table to {TABLE}")
    a = p.parse_args(argv)
    summary = {}
    for ch in a.chapters or chapters_with_suites():
        rows = _capstone_rows() if get_chapter(ch).capstone else mutant_stats(ch)
        counts = [len(r["failed"]) for r in rows]
        for r in rows:
            flag = "  FULL MARKS" if r["score"] >= r["max_score"] else ""
            flag += "" if r["diagnosed"] else "  (misdiagnosed)"
            print(f"{ch} {r['mutant']:<36} {r['score']:>5g}/{r['max_score']:<4g} fails {len(r['failed']):>2}{flag}")
            if a.verbose:
                print("      " + "\n      ".join(r["failed"]))
        if counts:
            print(f"{ch}: {len(rows)} mutants, failing tests per mutant: median {statistics.median(counts):g}, "
                  f"max {max(counts)}")
            summary[ch] = stats_row(counts, [r["diagnosed"] for r in rows])
    if a.write:
        TABLE.parent.mkdir(exist_ok=True)
        TABLE.write_text(mutant_table(summary))
        print(f"wrote {TABLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
