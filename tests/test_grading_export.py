"""``tfmcourse export``: grade files that Canvas and Moodle import, checked against their documented layouts.

The layouts are written out here, not imported from the module, as the systems document them:

* Canvas, its gradebook import (Grades > Import) as Canvas's ``GradebookImporter`` (instructure/canvas-lms)
  reads it: the header row starts with Student, ID, SIS User ID, SIS Login ID,
  Section (the importer requires ``row[0]`` to contain "Student", ``row[1]`` "ID" and the last
  student-information column to be "Section"); assignment columns follow; an optional row whose first cell
  contains "Points Possible"; a student is matched by ID (Canvas user id), then SIS ids, then full name;
  a student not in the file is left alone (an empty cell would clear the grade they have).
* Moodle, the assignment's offline grading worksheet (``mod/assign/gradingtable.php`` writes it,
  ``mod/assign/feedback/offline/importgradeslib.php`` reads it): Identifier ("Participant " + the
  participant number also used in the download's folder names), Full name, the identity fields (Email
  address), Status, Grade, Maximum Grade, Grade can be changed, Last modified (submission), Last modified
  (grade), then feedback columns such as Feedback comments (HTML). The importer locates Identifier, Grade
  and Last modified (grade) by header and skips a row whose grade is empty.
"""
from __future__ import annotations

import csv
import json
import os
from datetime import datetime
from pathlib import Path

import pytest

from tfmcourse.cli import main as tfm_main
from tfmcourse.grading import export
from tfmcourse.grading.intake import student_key

CANVAS_HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
MOODLE_HEADER = ["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade", "Grade can be changed",
                 "Last modified (submission)", "Last modified (grade)"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

TESTS = [("test_causal_mask_square", 2.0), ("test_sdpa_matches_pytorch", 2.0),
         ("test_sdpa_default_scale_is_one_over_sqrt_dk", 2.0), ("test_sdpa_boolean_mask", 1.0)]
NO_SCALE = {"mutant": "m01_no_scale", "mistake": "scores are not scaled by 1/sqrt(d_k)",
            "names": ["scaled_dot_product_attention"], "exact": True, "shown": 1, "agreed": 1, "explains": 1,
            "tests": ["test_sdpa_default_scale_is_one_over_sqrt_dk"]}
MASK = {"mutant": "m04_mask_inverted", "mistake": "the boolean mask is used inverted (True = masked out)",
        "names": ["scaled_dot_product_attention"], "exact": True, "shown": 2, "agreed": 2, "explains": 2,
        "tests": ["test_sdpa_boolean_mask"]}


def record(student: str, notebook: str, *, lms_id: str = "", failing: tuple[str, ...] = (), status: str = "graded",
           diagnosis: list | None = None, flags: tuple[str, ...] = (), chapter: str = "ch03", **extra) -> dict:
    """A result file as ``tfmcourse grade`` writes it (fields of pool.GraderProcess.grade)."""
    tests = [{"id": tid, "title": tid.replace("_", " "), "max_points": pts,
              "outcome": "failed" if (tid in failing or status != "graded") else "passed",
              "points": 0.0 if (tid in failing or status != "graded") else pts,
              "reason": "differs from the expected values" if tid in failing else ""} for tid, pts in TESTS]
    r = {"student": student, "key": student_key(student), "lms_id": lms_id, "flags": list(flags), "chapter": chapter,
         "notebook": notebook, "sha256": "0" * 64, "status": status, "score": sum(t["points"] for t in tests),
         "max_score": sum(p for _, p in TESTS), "tests": tests, "problems": [], "sandbox": {"mode": "bwrap"},
         "attempts": 1, **extra}
    if diagnosis:
        r["diagnosis"] = diagnosis
    return r


def class_records(folder: str = "/srv/class") -> list[dict]:
    """A small class: Canvas, Moodle (zip) and plain-layout students, a rejection, a grader error, a late
    submission, names that try formula injection, new rows and HTML."""
    return [
        record("smithjohn", f"{folder}/smithjohn_12345_67890_ch03_qkv.ipynb", lms_id="12345"),
        record("leeann", f"{folder}/leeann_LATE_23456_78901_ch03_qkv-1.ipynb", lms_id="23456", flags=("late",),
               failing=("test_sdpa_default_scale_is_one_over_sqrt_dk",), diagnosis=[NO_SCALE]),
        record("Zoë Ñúñez", f"{folder}/dl.zip!Zoë Ñúñez_4242_assignsubmission_file_/ch03_qkv.ipynb",
               lms_id="4242", failing=("test_sdpa_boolean_mask",), diagnosis=[MASK, NO_SCALE]),
        record("=HYPERLINK(\"http://x\",\"click\")", f"{folder}/=HYPERLINK/ch03_qkv.ipynb",
               failing=("test_sdpa_default_scale_is_one_over_sqrt_dk",), diagnosis=[NO_SCALE]),
        record("+1-2", f"{folder}/+1-2/ch03_qkv.ipynb", status="rejected",
               rejected="your submission is a symbolic link, not a notebook file: submit the notebook file itself"),
        record("@SUM(A1)\nforged,row", f"{folder}/x/ch03_qkv.ipynb", status="error",
               problems=["grader error (not the student's fault; re-run to retry): no answer within 300 s"]),
        record("<script>alert(1)</script>", f"{folder}/mallory/ch03_qkv.ipynb", lms_id="999",
               failing=("test_sdpa_boolean_mask",), diagnosis=[MASK]),
    ]


def write_class(folder: Path, records: list[dict] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for r in records or class_records():
        (folder / f"{r['key']}.json").write_text(json.dumps(r), encoding="utf-8")
    return folder


def read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def by_name(rows: list[list[str]], column: int) -> dict[str, list[str]]:
    return {row[column]: row for row in rows}


@pytest.fixture()
def results(tmp_path) -> Path:
    return write_class(tmp_path / "results_ch03")


def _cells_are_safe(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            assert not cell.startswith(FORMULA_STARTS), cell
            assert "\n" not in cell and "\r" not in cell and "\u202e" not in cell, cell


def test_canvas_gradebook_matches_the_documented_import_layout(results, tmp_path, capsys):
    out = tmp_path / "canvas.csv"
    assert tfm_main(["export", str(results), "--format", "canvas", "--out", str(out)]) == 0
    rows = read_rows(out)
    header, points, students = rows[0], rows[1], rows[2:]
    # the importer's header check (row_has_student_headers?, then the last info column is Section)
    assert header[:5] == CANVAS_HEADER and "Student" in header[0] and "ID" in header[1] and header[4] == "Section"
    assert header[5] == "ch03 Queries, keys, values" and len(header) == 6
    assert "Points Possible" in points[0] and points[5] == "7" and points[1:5] == ["", "", "", ""]
    assert len(students) == 6 and all(len(r) == 6 for r in students)  # the grader error is left out
    rows_by = by_name(students, 0)
    # Canvas ids come only from Canvas-named files; a Moodle participant number is not a Canvas user id
    assert rows_by["smithjohn"][1:] == ["12345", "", "", "", "7"]
    assert rows_by["leeann"][1] == "23456" and rows_by["leeann"][5] == "5"
    assert rows_by["Zoë Ñúñez"][1] == "" and rows_by["Zoë Ñúñez"][5] == "6"
    assert rows_by["<script>alert(1)</script>"][1] == ""  # lms_id 999 without a Canvas file name: not used
    assert rows_by["'+1-2"][5] == "0"  # rejected: a real 0
    assert not any("SUM(A1)" in r[0] for r in students)  # grader error: not a grade, Canvas keeps its own
    _cells_are_safe(rows)
    err = capsys.readouterr().err
    assert "without a Canvas user id" in err and "Zoë Ñúñez" in err and "grader error" in err


def test_canvas_assignment_header_and_points(results, tmp_path):
    out = tmp_path / "c.csv"
    assert export.main([str(results), "-f", "canvas", "-o", str(out), "--assignment", "Queries, keys, values (98765)",
                        "--points", "100"]) == 0
    rows = read_rows(out)
    assert rows[0][5] == "Queries, keys, values (98765)" and rows[1][5] == "100"
    assert by_name(rows[2:], 0)["leeann"][5] == f"{round(5 / 7 * 100, 2):g}"


def test_moodle_worksheet_matches_the_documented_layout(results, tmp_path, capsys):
    out = tmp_path / "moodle.csv"
    assert export.main([str(results), "--format", "moodle", "--out", str(out), "--points", "100", "--feedback"]) == 0
    rows = read_rows(out)
    assert rows[0] == MOODLE_HEADER + ["Feedback comments"]
    col = {name: i for i, name in enumerate(rows[0])}
    students = rows[1:]
    assert len(students) == 7
    zoe = by_name(students, col["Full name"])["Zoë Ñúñez"]
    assert zoe[col["Identifier"]] == "Participant 4242"  # the importer strips "Participant " to get 4242
    assert zoe[col["Grade"]] == f"{round(6 / 7 * 100, 2):g}" and zoe[col["Maximum Grade"]] == "100"
    assert "1/sqrt(d_k)" not in zoe[col["Feedback comments"]]  # her most likely mistake is the mask
    assert "mask is used inverted" in zoe[col["Feedback comments"]]
    # only Moodle's own download gives participant numbers: other rows are left for the instructor
    assert by_name(students, col["Full name"])["smithjohn"][col["Identifier"]] == ""
    for row in students:
        stamp = datetime.fromisoformat(row[col["Last modified (grade)"]])  # strtotime reads ISO 8601 with offset
        assert stamp.tzinfo is not None
        grade = row[col["Grade"]]
        assert grade == "" or 0 <= float(grade) <= float(row[col["Maximum Grade"]])
    assert by_name(students, col["Full name"])["'@SUM(A1)\\u000aforged,row"][col["Grade"]] == ""
    mallory = by_name(students, col["Full name"])["<script>alert(1)</script>"]
    assert "<script>" not in mallory[col["Feedback comments"]]  # the comment is HTML in Moodle
    _cells_are_safe(rows)
    assert "without a Moodle participant number" in capsys.readouterr().err


def test_csv_is_the_course_gradebook(results, tmp_path):
    out = tmp_path / "g.csv"
    assert export.main([str(results), "-f", "csv", "-o", str(out)]) == 0
    rows = read_rows(out)
    from tfmcourse.grading.gradebook import CSV_FIELDS
    assert rows[0] == CSV_FIELDS and len(rows) == 8
    assert by_name(rows[1:], 0)["leeann"][CSV_FIELDS.index("flags")] == "late"
    _cells_are_safe(rows)


def test_only_the_students_of_a_gradebook(results, tmp_path):
    gradebook = tmp_path / "gradebook.csv"
    gradebook.write_text("student,key\nsmithjohn,smithjohn\nleeann,leeann\n")
    out = tmp_path / "c.csv"
    assert export.main([str(results), "-f", "canvas", "-o", str(out), "--gradebook", str(gradebook)]) == 0
    assert sorted(r[0] for r in read_rows(out)[2:]) == ["leeann", "smithjohn"]


def test_lms_system_reads_the_download_names():
    recs = {r["student"]: r for r in class_records()}
    assert export.lms_system(recs["smithjohn"]) == "canvas" and export.lms_system(recs["leeann"]) == "canvas"
    assert export.lms_system(recs["Zoë Ñúñez"]) == "moodle"
    assert export.lms_system(recs["<script>alert(1)</script>"]) == ""
    assert export.lms_system({**recs["smithjohn"], "lms_id": "99"}) == ""  # the id must be the file's


def test_usage_errors(results, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert export.main([str(empty), "-f", "csv"]) == 2 and "no result files" in capsys.readouterr().err
    assert export.main([str(tmp_path / "nope"), "-f", "csv"]) == 2 and "not a folder" in capsys.readouterr().err
    write_class(results, [record("ann", "/x/ann/ch04_multihead.ipynb", chapter="ch04")])
    assert export.main([str(results), "-f", "csv", "-o", str(tmp_path / "x.csv")]) == 2
    assert "pass --chapter" in capsys.readouterr().err
    assert export.main([str(results), "-f", "csv", "--chapter", "ch04", "-o", str(tmp_path / "x.csv")]) == 0
    assert export.main([str(results), "-f", "canvas", "--chapter", "ch09"]) == 2
    assert "unknown chapter 'ch09'" in capsys.readouterr().err
    for bad in (["-f", "pdf"], ["-f", "csv", "--points", "10"], ["-f", "canvas", "--points", "-1"],
                ["-f", "canvas", "--feedback"], ["-f", "moodle", "--assignment", "x"]):
        with pytest.raises(SystemExit) as e:
            export.main([str(results), *bad])
        assert e.value.code == 2
    assert export.main([str(results), "-f", "csv", "--chapter", "ch03", "-o", str(tmp_path)]) == 2


def test_help_is_plain_text(capsys):
    with pytest.raises(SystemExit) as e:
        tfm_main(["export", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "--format" in out and "Participant N" in out
    assert "``" not in out and ":mod:" not in out and ":func:" not in out


def test_written_file_is_private(results, tmp_path):
    out = tmp_path / "c.csv"
    assert export.main([str(results), "-f", "canvas", "-o", str(out)]) == 0
    assert os.stat(out).st_mode & 0o077 == 0  # grades: readable by the instructor only
