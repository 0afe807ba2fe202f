"""Results out: per-student result JSON, Markdown feedback and the CSV gradebook.

Submissions come in through :mod:`.intake`. Every file the grader writes goes through a temp file and
``os.replace`` (mode 0600), so a run killed at any moment leaves complete files only; the per-student
result JSON (``results/<key>.json``) is the commit point of a student.

A result's ``status`` is ``graded``, ``rejected`` (the submission is not a notebook the grader will
read: a link, a folder, a special or oversized file; 0 points) or ``error`` (a fault of the grader
itself, e.g. the sandbox could not start; retried on the next run, at most ``MAX_ATTEMPTS`` times for
the same notebook so that no submission is regraded forever).
"""
from __future__ import annotations

import csv
import html
import io
import json
import os
import re
import tempfile
from pathlib import Path

from . import interfaces
from .intake import Submission

__all__ = ["load_results", "write_gradebook", "feedback_markdown", "write_text_atomic", "result_is_current",
           "previous_attempts", "csv_cell", "display_name", "MAX_ATTEMPTS", "CSV_FIELDS"]

MAX_ATTEMPTS = 2  # grader errors on one notebook before it is left for the instructor (``--force`` retries)


def _read_result(path: Path) -> dict | None:
    try:
        r = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return r if isinstance(r, dict) else None


def previous_attempts(result_file: Path, sub: Submission) -> int:
    """How many times this exact notebook already ended in a grader error."""
    r = _read_result(result_file)
    if r and r.get("status") == "error" and r.get("sha256") == sub.sha256 and r.get("notebook") == sub.path:
        return int(r.get("attempts", 1))
    return 0


def result_is_current(result_file: Path, sub: Submission) -> bool:
    """Whether ``result_file`` already holds the final result of this exact submission."""
    r = _read_result(result_file)
    if not r or r.get("chapter") != sub.chapter or r.get("student") != sub.student:
        return False
    if sub.rejected:
        return r.get("status") == "rejected" and r.get("rejected") == sub.rejected and r.get("notebook") == sub.path
    if r.get("sha256") != sub.sha256:
        return False
    return r.get("status") == "graded" or (r.get("status") == "error" and int(r.get("attempts", 1)) >= MAX_ATTEMPTS)


def load_results(results_dir: Path, chapter: str, keys: set[str] | None = None) -> list[dict]:
    """The results of ``chapter`` in ``results_dir`` (only those of ``keys`` if given), by student."""
    out = []
    for f in sorted(Path(results_dir).glob("*.json")):
        if keys is not None and f.stem not in keys:
            continue
        r = _read_result(f)
        if r and r.get("chapter") == chapter and isinstance(r.get("student"), str):
            out.append(r)
    return sorted(out, key=lambda r: (r["student"], r.get("key", "")))


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def display_name(text: str) -> str:
    """``text`` on one line: control characters, line and paragraph separators and bidirectional
    overrides become ``\\uXXXX`` escapes, so a name can never start a new row or hide its own letters."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", str(text))


def csv_cell(value: object) -> str:
    """A CSV cell that a spreadsheet shows as text: one line, and a leading ``= + - @`` (or tab/CR)
    that would start a formula gets a ``'`` in front (formula injection)."""
    text = display_name(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") or str(value)[:1] in ("\t", "\r") else text


CSV_FIELDS = ["student", "lms_id", "chapter", "score", "max_score", "percent", "status", "passed", "failed",
              "flags", "key", "notebook"]


def write_gradebook(path: Path, results: list[dict]) -> None:
    """Rewrite the CSV gradebook from ``results`` (sorted by student; no timestamps, so it is reproducible)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in results:
        passed = sum(t["outcome"] == "passed" for t in r["tests"])
        row = {"student": r["student"], "lms_id": r.get("lms_id", ""), "chapter": r["chapter"],
               "score": f"{r['score']:g}", "max_score": f"{r['max_score']:g}", "status": r["status"],
               "percent": f"{100 * r['score'] / r['max_score']:.1f}" if r["max_score"] else "0.0", "passed": passed,
               "failed": sum(t["outcome"] in ("failed", "error", "not run") for t in r["tests"]),
               "flags": " ".join(r.get("flags", [])), "key": r.get("key", ""), "notebook": r["notebook"]}
        w.writerow({k: csv_cell(v) for k, v in row.items()})
    write_text_atomic(Path(path), buf.getvalue())


def _md(text: object) -> str:
    """Student-controlled text inside Markdown: one line, no HTML."""
    return html.escape(display_name(text), quote=False)


def _mistake_line(d: dict) -> str:
    names = ", ".join(f"`{n}`" for n in d.get("names", [])) or "your code"
    how = "exactly like" if d.get("exact") else f"like (on {d['agreed']} of {d['shown']} probes where it shows)"
    return f"Your {names} behaves {how} a known mistake: {d['mistake']}."


def _diagnosis_lines(r: dict) -> list[str]:
    """The known mistakes first, then the failing tests grouped by the mistake that explains them."""
    diagnosis = r.get("diagnosis") or []
    failing = [t for t in r["tests"] if t["outcome"] in ("failed", "error", "not run")]
    if not diagnosis or not failing:
        return []
    lines = ["## What went wrong", ""]
    explained: set[str] = set()
    for i, d in enumerate(diagnosis, 1):
        tests = [t for t in failing if t["id"] in d.get("tests", []) and t["id"] not in explained]
        explained |= {t["id"] for t in tests}
        lost = sum(t["max_points"] for t in tests)
        lines.append(f"{i}. {_mistake_line(d)}")
        if tests:
            lines.append(f"   It explains {len(tests)} failing test(s), {lost:g} point(s): "
                         + ", ".join(f"`{t['id']}`" for t in tests))
    rest = [t for t in failing if t["id"] not in explained]
    if rest:
        lines.append(f"{len(diagnosis) + 1}. Failing for other reasons: " + ", ".join(f"`{t['id']}`" for t in rest))
    return lines + [""]


def feedback_markdown(r: dict) -> str:
    """Per-student feedback: the most likely mistake first, the score, loading problems, the failing tests
    grouped by cause, then every test with its points and reason."""
    ch = interfaces.get_chapter(r["chapter"])
    pct = f" ({100 * r['score'] / r['max_score']:.0f} %)" if r["max_score"] else ""
    lines = []
    if r.get("diagnosis"):
        lines += [f"**Most likely mistake: {_mistake_line(r['diagnosis'][0])}**", ""]
    lines += [f"# {ch.id} {ch.title}: feedback for {_md(r['student'])}", "",
              f"**Score: {r['score']:g} / {r['max_score']:g} points**{pct}", ""]
    if r["status"] == "rejected":
        lines += ["## Your submission could not be graded", "", f"- {_md(r.get('rejected', ''))}", ""]
    elif r["status"] != "graded":
        lines += ["The grader could not finish grading this notebook; your instructor will re-run it.", ""]
    problems = [p for p in r.get("problems", []) if p != r.get("rejected")]
    if problems:
        lines += ["## Problems found while loading your notebook", ""] + [f"- {_md(p)}" for p in problems] + [""]
    lines += _diagnosis_lines(r)
    failed = [t for t in r["tests"] if t["outcome"] in ("failed", "error", "not run")]
    lines += [f"## Tests ({len(r['tests']) - len(failed)} of {len(r['tests'])} passed)", ""]
    for t in r["tests"]:
        mark = {"passed": "PASS", "skipped": "SKIP"}.get(t["outcome"], "FAIL")
        title = f": {t['title']}" if t.get("title") else ""
        lines.append(f"- **{mark}** `{t['id']}` ({t['points']:g}/{t['max_points']:g}){title}")
        if t["outcome"] not in ("passed",) and t.get("reason"):
            lines.append(f"  - why: {_md(t['reason'])}")
    return "\n".join(lines) + "\n"
