"""tfmcourse export RESULTS_DIR --format canvas|moodle|csv [--out FILE]

Writes the grades of one chapter as a file a learning-management system imports, from the per-student
result files that tfmcourse grade wrote (its --results folder, results_chNN/ by default).

  canvas  Canvas's gradebook CSV: Student, ID, SIS User ID, SIS Login ID, Section, then one column for
          the assignment and a "Points Possible" row. Canvas matches a row by ID (the Canvas user id,
          the first number in a Canvas download's file names, e.g. smithjohn_12345_67890_ch03_qkv.ipynb),
          then SIS User ID or SIS Login ID, then by the student's full name.
  moodle  Moodle's offline grading worksheet (Assignment > View all submissions > Grading action >
          Upload grading worksheet): Identifier ("Participant N", N from the folder names of a Moodle
          download), Full name, Email address, Status, Grade, Maximum Grade, ... Last modified (grade).
  csv     the course's own gradebook CSV (as tfmcourse grade writes it).

Ids are never invented: a student whose notebook did not come from that system's download gets an
empty id cell and a warning (fill it in before importing). A grader error is never exported as a zero:
it is left out of the Canvas file and has an empty grade in the Moodle worksheet (which Moodle skips),
so the LMS keeps what it had. Every cell is guarded against spreadsheet formula injection.
"""
from __future__ import annotations

import argparse
import csv
import html
import io
import json
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

from . import interfaces
from .argtypes import positive
from .gradebook import csv_cell, load_results, write_gradebook, write_text_atomic
from .lms import owner_from_file_name, owner_from_folder_name

__all__ = ["CANVAS_IDENTITY", "MOODLE_COLUMNS", "FORMATS", "load_class", "lms_system", "canvas_rows", "moodle_rows",
           "write_export", "main"]

FORMATS = ("canvas", "moodle", "csv")
# Canvas's gradebook importer: the student-information columns it recognises, in this order.
CANVAS_IDENTITY = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
# Moodle's grading worksheet (English language pack), as its own download writes it for an assignment
# without marking workflow; the importer needs "Identifier", "Grade" and "Last modified (grade)".
MOODLE_COLUMNS = ["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade",
                  "Grade can be changed", "Last modified (submission)", "Last modified (grade)"]
MOODLE_FEEDBACK = "Feedback comments"  # the comments feedback plugin's column (imported as HTML)
MOODLE_PARTICIPANT = "Participant "


def load_class(results_dir: str | Path, chapter: str | None = None,
               gradebook: str | Path | None = None) -> tuple[str, list[dict]]:
    """The chapter and its results in ``results_dir`` (only the students of ``gradebook`` if given).

    Raises:
        ValueError: no results, results of several chapters and no ``chapter``, or an unreadable gradebook.
    """
    folder = Path(results_dir)
    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder of results (tfmcourse grade writes results_chNN/)")
    if chapter is None:
        found = {interfaces.get_chapter(c).id for c in _chapters_in(folder)}
        if not found:
            raise ValueError(f"no result files in {folder} (tfmcourse grade writes them to results_chNN/)")
        if len(found) > 1:
            raise ValueError(f"{folder} holds results of {', '.join(sorted(found))}: pass --chapter")
        chapter = found.pop()
    chapter = interfaces.get_chapter(chapter).id
    keys = None
    if gradebook is not None:
        try:
            with open(gradebook, newline="", encoding="utf-8") as f:
                keys = {row["key"] for row in csv.DictReader(f) if row.get("key")}
        except (OSError, KeyError, csv.Error) as e:
            raise ValueError(f"cannot read the students of gradebook {gradebook}: {e}") from None
    results = load_results(folder, chapter, keys)
    if not results:
        raise ValueError(f"no {chapter} results in {folder}")
    return chapter, results


def _chapters_in(folder: Path) -> set[str]:
    out = set()
    for f in folder.glob("*.json"):
        try:
            c = json.loads(f.read_text(encoding="utf-8")).get("chapter")
            if isinstance(c, str) and c.lower() in interfaces.GRADED:
                out.add(c.lower())
        except (OSError, ValueError, AttributeError):
            continue
    return out


def lms_system(result: dict) -> str:
    """The system whose download named this result's notebook (``canvas``, ``moodle``, ``blackboard``)
    and whose id it carries, or ``""``: an id is only used in that system's file."""
    parts = [p.rsplit("!", 1)[-1] for p in re.split(r"[/\\]", str(result.get("notebook", "")))]
    if parts:
        owner = owner_from_file_name(parts[-1])
        if owner and owner.lms_id == result.get("lms_id"):
            return owner.system
    for folder in parts[:-1]:
        owner = owner_from_folder_name(folder)
        if owner and owner.lms_id == result.get("lms_id"):
            return owner.system
    return ""


def _points(r: dict, scale: float) -> str:
    """The grade cell: score (times ``scale``, 2 decimals as the LMSs show), empty for a grader error."""
    if r["status"] == "error":
        return ""
    return f"{round(float(r['score']) * scale, 2):g}"


def _scale(results: list[dict], points: float | None) -> tuple[float, float]:
    """(factor, maximum): scores are rescaled so that the suite's maximum becomes ``points``."""
    suite_max = max((float(r["max_score"]) for r in results if r["max_score"]), default=0.0)
    if points is None or not suite_max:
        return 1.0, suite_max
    return points / suite_max, points


def canvas_rows(results: list[dict], assignment: str, points: float | None = None) -> tuple[list[list[str]], list[str]]:
    """Canvas gradebook rows (header, "Points Possible", one per student) and warnings."""
    factor, maximum = _scale(results, points)
    rows = [[*CANVAS_IDENTITY, assignment], ["Points Possible", "", "", "", "", f"{maximum:g}"]]
    no_id = []
    for r in results:
        if r["status"] == "error":
            continue  # left out: a blank cell would clear a grade Canvas already has
        canvas_id = r.get("lms_id", "") if lms_system(r) == "canvas" else ""
        if not canvas_id:
            no_id.append(r["student"])
        rows.append([r["student"], canvas_id, "", "", "", _points(r, factor)])
    warnings = []
    if no_id:
        warnings.append(f"{len(no_id)} student(s) without a Canvas user id ({_names(no_id)}): their notebooks were "
                        f"not named by a Canvas download, so Canvas can only match them by full name; fill in the ID "
                        f"(or SIS User ID) column from a Canvas gradebook export before importing")
    return rows, warnings


def _moodle_feedback(r: dict) -> str:
    """A short HTML comment (Moodle stores feedback comments as HTML): score and most likely mistake."""
    text = f"<p>{html.escape(interfaces.get_chapter(r['chapter']).id)}: {r['score']:g} / {r['max_score']:g} points " \
           f"(tfmcourse).</p>"
    if r.get("status") == "rejected":
        text += f"<p>Not graded: {html.escape(str(r.get('rejected', '')))}</p>"
    elif r.get("diagnosis"):
        d = r["diagnosis"][0]
        text += f"<p>Most likely mistake: {html.escape(str(d.get('mistake', '')))} (your " \
                f"{html.escape(', '.join(d.get('names', [])) or 'code')} behaves like that).</p>"
    return text


def moodle_rows(results: list[dict], points: float | None = None, modified: dict[str, float] | None = None,
                feedback: bool = False) -> tuple[list[list[str]], list[str]]:
    """Moodle grading-worksheet rows (header first) and warnings. ``modified``: ``{key: unix time}`` of
    each result (the worksheet's "Last modified (grade)"; Moodle keeps a grade changed after it)."""
    factor, maximum = _scale(results, points)
    rows = [MOODLE_COLUMNS + ([MOODLE_FEEDBACK] if feedback else [])]
    no_id = []
    status = {"graded": "Graded by tfmcourse", "rejected": "Not graded: rejected (see feedback)",
              "error": "Not graded: grader error (rerun tfmcourse grade)"}
    for r in results:
        pid = r.get("lms_id", "") if lms_system(r) == "moodle" else ""
        if not pid:
            no_id.append(r["student"])
        when = (modified or {}).get(r.get("key", ""))
        stamp = datetime.fromtimestamp(when, timezone.utc).astimezone().isoformat(timespec="seconds") if when else ""
        row = [MOODLE_PARTICIPANT + pid if pid else "", r["student"], "", status.get(r["status"], r["status"]),
               _points(r, factor), f"{maximum:g}", "Yes", "", stamp]
        rows.append(row + ([_moodle_feedback(r)] if feedback else []))
    warnings = []
    if no_id:
        warnings.append(f"{len(no_id)} student(s) without a Moodle participant number ({_names(no_id)}): their "
                        f"notebooks were not in a Moodle download's 'Name_NUMBER_assignsubmission_file_' folders; "
                        f"Moodle matches rows by Identifier only, so fill in 'Participant N' from Moodle's own "
                        f"worksheet or those rows are skipped")
    return rows, warnings


def _names(names: list[str], most: int = 5) -> str:
    from .gradebook import display_name
    shown = ", ".join(display_name(n) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _csv_text(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")  # RFC 4180 line ends, which both importers read
    for row in rows:
        w.writerow([csv_cell(c) for c in row])
    return buf.getvalue()


def write_export(results: list[dict], fmt: str, out: Path, *, assignment: str, points: float | None = None,
                 feedback: bool = False, results_dir: Path | None = None) -> list[str]:
    """Write ``results`` as ``fmt`` to ``out`` (atomically); returns the warnings to show."""
    warnings: list[str] = []
    errors = [r["student"] for r in results if r["status"] == "error"]
    if errors and fmt != "csv":
        how = "left out of the file" if fmt == "canvas" else "left with an empty grade, which Moodle skips"
        warnings.append(f"{len(errors)} grader error(s) {how} ({_names(errors)}): rerun tfmcourse grade, then export "
                        f"again")
    if fmt == "csv":
        write_gradebook(out, results)
        return warnings
    if fmt == "canvas":
        rows, more = canvas_rows(results, assignment, points)
    else:
        modified = {}
        for r in results:
            try:
                modified[r.get("key", "")] = (Path(results_dir) / f"{r.get('key', '')}.json").stat().st_mtime
            except (OSError, TypeError):
                pass
        rows, more = moodle_rows(results, points, modified, feedback)
    write_text_atomic(out, _csv_text(rows))
    return warnings + more


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tfmcourse export", description=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", metavar="RESULTS_DIR", help="the per-student result folder of tfmcourse grade")
    p.add_argument("--format", "-f", required=True, choices=FORMATS, help="canvas, moodle or csv")
    p.add_argument("--out", "-o", help="file to write (default: ./<format>_chNN.csv)")
    p.add_argument("--chapter", help="chNN (default: the chapter of the results in the folder)")
    p.add_argument("--gradebook", metavar="CSV",
                   help="export only the students listed in this gradebook of tfmcourse grade (other results in "
                        "the folder, e.g. from an earlier class, are left out)")
    p.add_argument("--assignment", help="Canvas: the assignment column's header; use the exact header of a Canvas "
                                        "gradebook export, e.g. 'Queries, keys, values (98765)', to update that "
                                        "assignment (default: 'chNN Title', which Canvas creates as a new one)")
    p.add_argument("--points", type=positive(float), help="canvas, moodle: rescale scores so that full marks are this "
                                                    "many points (the LMS assignment's maximum; default: the suite's)")
    p.add_argument("--feedback", action="store_true",
                   help="moodle: add a Feedback comments column (score and most likely mistake; imported when the "
                        "assignment has feedback comments enabled, replacing the comments it had)")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    if a.format == "csv" and (a.points or a.assignment or a.feedback):
        p.error("--points, --assignment and --feedback apply to canvas and moodle only")
    if a.format == "canvas" and a.feedback:
        p.error("--feedback applies to moodle only (Canvas's gradebook import takes grades, not comments)")
    if a.format == "moodle" and a.assignment:
        p.error("--assignment applies to canvas only (a Moodle worksheet belongs to one assignment)")
    try:
        chapter, results = load_class(a.results, a.chapter, a.gradebook)
    except (ValueError, KeyError) as e:
        print(f"tfmcourse export: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    ch = interfaces.get_chapter(chapter)
    name = {"canvas": "canvas", "moodle": "moodle", "csv": "grades"}[a.format]
    out = Path(a.out or f"{name}_{chapter}.csv").resolve()
    if out.is_dir():
        print(f"tfmcourse export: --out {out} is a folder; give a file name", file=sys.stderr)
        return 2
    try:
        warnings = write_export(results, a.format, out, assignment=a.assignment or f"{ch.id} {ch.title}",
                                points=a.points, feedback=a.feedback, results_dir=Path(a.results))
    except OSError as e:
        print(f"tfmcourse export: cannot write {out}: {e.strerror or e}", file=sys.stderr)
        return 2
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    maximum = a.points or max(float(r["max_score"]) for r in results)
    print(f"{a.format}: {len(results)} student(s) of {chapter} written to {out} (full marks: {maximum:g} points"
          f"{'' if a.format == 'csv' else '; the LMS assignment must allow that many, or pass --points'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
