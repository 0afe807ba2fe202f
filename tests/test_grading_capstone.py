"""The capstone (ch08) graded by ``tfmcourse grade``: each student hands in one folder with every chapter notebook
and the capstone's; the sandbox builds the GPT and the ViT from the student's own pieces (the whole reference is
stubbed out) and trains them there.

* One CLI run, sandboxed, ``--jobs 2``: the reference folder scores full marks, the blank release 0, a folder without
  ch04 loses the model tests with a problem line naming the missing notebook (its top_p tests still pass), and two
  mutants (a top_p mistake, an earlier chapter's piece) lose the points of their own idea, with reasons that say
  where to look.
* In-process: every capstone mutant loses points, and the diagnosis names each mistake.
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tfmcourse.grading import interfaces
from tfmcourse.grading.runner import suite_points
from tfmcourse.grading.testing import (MUTANTS_DIR, SOLUTIONS_DIR, capstone_folder, capstone_mutant_cells,
                                       capstone_mutant_stats, mutant_files, once_per_run)

pytestmark = [pytest.mark.ch08, pytest.mark.xdist_group("capstone")]  # one shared grading run
CH = interfaces.CAPSTONE
# cheap tests first, then one training at a time (the ViT's is the shorter)
QUICK = ("not trains", "test_vit_trains", "test_gpt_trains")
CLASS_MUTANTS = {"m02_boundary_token_kept": ["test_top_p_ties"],  # the capstone's own answer
                 "m23_block_attention_discarded": ["test_gpt_trains", "test_vit_trains"]}  # a chapter-5 piece


def _notebook(folder: Path, chapter: str) -> dict:
    return json.loads((folder / f"{interfaces.get_chapter(chapter).slug}.ipynb").read_text())


def test_capstone_folder_puts_each_mutant_cell_in_its_chapter(tmp_path):
    mutant = MUTANTS_DIR / "ch08" / "m17_block_drops_is_causal.py"
    assert set(capstone_mutant_cells(mutant)) == {"ch05"}
    assert set(capstone_mutant_cells(MUTANTS_DIR / "ch08" / "m02_boundary_token_kept.py")) == {"ch08"}
    built = capstone_folder(tmp_path / "m17", mutant=mutant)
    assert sorted(p.name for p in built.iterdir()) == sorted(f"{c.slug}.ipynb" for c in interfaces.GRADED.values())
    cells, original = _notebook(built, "ch05")["cells"], _notebook(SOLUTIONS_DIR, "ch05")["cells"]
    assert cells[:-1] == original and cells[-1]["metadata"]["nbgrader"]["solution"] is True
    assert "class EncoderBlock(EncoderBlock)" in cells[-1]["source"]
    assert _notebook(built, "ch08") == _notebook(SOLUTIONS_DIR, "ch08")  # the capstone's answer is the reference's
    assert not (capstone_folder(tmp_path / "no_ch04", drop=("ch04",)) / "ch04_multihead.ipynb").exists()


# --- one sandboxed CLI run over a small class ---------------------------------------------------------------------

def _grade_class(root: Path) -> dict:
    """Grade reference, blank, no_ch04 and the CLASS_MUTANTS folders with ``tfmcourse grade --jobs 2``."""
    subs = root / "class"
    capstone_folder(subs / "reference")
    capstone_folder(subs / "blank", blank=True)
    capstone_folder(subs / "no_ch04", drop=("ch04",))
    for name in CLASS_MUTANTS:
        capstone_folder(subs / name, mutant=MUTANTS_DIR / "ch08" / f"{name}.py")
    out = root / "out"
    run = subprocess.run([sys.executable, "-m", "tfmcourse.cli", "grade", str(subs), "--chapter", "ch08", "--jobs", "2",
                          "--out", str(out / "gradebook.csv")],
                         capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    with open(out / "gradebook.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    results = {p.stem: json.loads(p.read_text()) for p in (out / "results_ch08").glob("*.json")}
    feedback = {p.stem: p.read_text() for p in (out / "feedback_ch08").glob("*.md")}
    return {"rows": rows, "results": results, "feedback": feedback}


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict:
    return once_per_run(tmp_path_factory, "capstone-class", _grade_class)


def _failed(result: dict) -> dict[str, str]:
    return {t["id"]: t["reason"] for t in result["tests"] if t["outcome"] != "passed"}


def test_gradebook_lists_every_folder(graded):
    assert sorted(r["student"] for r in graded["rows"]) == sorted(["reference", "blank", "no_ch04", *CLASS_MUTANTS])
    assert all(r["chapter"] == "ch08" and r["status"] == "graded" for r in graded["rows"])


def test_reference_folder_scores_full_marks(graded):
    r = graded["results"]["reference"]
    assert r["score"] == r["max_score"] == sum(suite_points("ch08").values()) > 0, _failed(r)
    assert r["problems"] == [] and r["sandbox"].get("mode") in ("bwrap", "bwrap-userns", "basic")


def test_blank_release_folder_scores_zero(graded):
    r = graded["results"]["blank"]
    assert r["score"] == 0 and r["max_score"] > 0
    assert any("not implemented yet in ch04_multihead.ipynb" in p for p in r["problems"])


def test_missing_chapter_costs_the_model_tests_with_a_clear_problem(graded):
    r = graded["results"]["no_ch04"]
    assert any(p.startswith("ch04: ch04_multihead.ipynb not found") for p in r["problems"]), r["problems"]
    assert "ch04_multihead.ipynb not found" in graded["feedback"]["no_ch04"]
    failed = _failed(r)
    assert failed and all(not t.startswith("test_top_p") for t in failed), failed  # top_p needs no chapter
    for test, reason in failed.items():
        assert "chapter 4" in reason and "ch04_multihead.ipynb not found" in reason, f"{test}: {reason}"


@pytest.mark.parametrize("mutant", sorted(CLASS_MUTANTS))
def test_mutant_folder_loses_the_points_of_its_idea(graded, mutant):
    r = graded["results"][mutant]
    failed = _failed(r)
    assert sorted(failed) == CLASS_MUTANTS[mutant], failed
    assert r["score"] == r["max_score"] - sum(suite_points("ch08")[t] for t in failed)
    chapters = sorted(set(capstone_mutant_cells(MUTANTS_DIR / "ch08" / f"{mutant}.py")) - {"ch08"})
    for test, reason in failed.items():  # an earlier chapter's mistake: the reason names that chapter
        assert all(f"chapter {int(c[2:])}" in reason for c in chapters), f"{test}: {reason}"
    if not chapters:  # the capstone's own answer: the feedback leads with the known mistake
        first = graded["feedback"][mutant].splitlines()[0]
        doc = (MUTANTS_DIR / "ch08" / f"{mutant}.py").read_text().splitlines()[0].split(":", 1)[1].strip(' ."')
        assert first.startswith("**Most likely mistake") and doc[:60] in first, first


# --- every mutant, in-process -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mutant_rows(tmp_path_factory) -> dict[str, dict]:
    """Each capstone mutant graded in-process until it loses points (once per run)."""
    def compute(root: Path) -> dict:
        return {r["mutant"]: r for r in capstone_mutant_stats(root, steps=QUICK)}
    return once_per_run(tmp_path_factory, "capstone-mutants", compute)


@pytest.mark.parametrize("mutant", [p.stem for p in mutant_files(CH.id)])
def test_capstone_mutant_loses_points(mutant_rows, mutant):
    r = mutant_rows[mutant]
    assert r["score"] < r["max_score"], f"{mutant} ({r['doc']}) scored full marks"


def test_diagnosis_names_every_capstone_mistake(mutant_rows):
    """top_p mutants: the known-mistake diagnosis names them; folder mutants: each failing test's reason names the
    chapter of the broken piece."""
    missed = {m: r["reasons"] or "no failing test" for m, r in mutant_rows.items() if not r["diagnosed"]}
    assert not missed, missed
