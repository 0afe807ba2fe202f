"""The diagnosis recognises a known mistake in code written differently from the mutant that defines it.

Each file in tests/diagnosis_variants/ is a student's own implementation (a loop instead of a table,
einsum instead of matmul, a LayerNorm written out) with one mistake that the corpus also holds; its name
says which (``ch03__m01_no_scale.py``). Graded like a submission, its feedback must name that mistake
first. The corpus itself is checked in test_grading_discrimination.py.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tfmcourse.grading.gradebook import feedback_markdown
from tfmcourse.grading.testing import diagnose_in_process, names_mutant

VARIANTS = sorted((Path(__file__).parent / "diagnosis_variants").glob("ch*__m*.py"))


@pytest.mark.parametrize("path", VARIANTS, ids=[p.stem for p in VARIANTS])
def test_a_differently_written_mistake_is_named(path):
    chapter, mutant = path.stem.split("__")
    r = diagnose_in_process(chapter, path.read_text(), module_name=f"variant_{path.stem}")
    assert r["score"] < r["max_score"], "the variant should lose points"
    assert names_mutant(r.get("diagnosis", []), mutant), \
        f"expected {mutant}, got {[(d['mutant'], d['exact'], d['explains']) for d in r.get('diagnosis', [])]}"
    record = {"student": "s", "chapter": chapter, "status": "graded", "problems": [], **r}
    assert feedback_markdown(record).splitlines()[0].startswith("**Most likely mistake:")
