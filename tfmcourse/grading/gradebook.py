"""Submissions in, results out: discovery, grading one submission, result JSON, feedback, CSV gradebook.

Layouts accepted for a folder ``DIR`` (``.ipynb``; ``.py`` with ``# %%`` cells also works):

* ``DIR/<student>.ipynb``                       one file per student;
* ``DIR/<student>/chNN_<slug>.ipynb``           one folder per student;
* ``DIR/<student>/<assignment>/chNN_*.ipynb``    nbgrader's ``submitted/`` layout.

A file whose own name starts with ``chNN_`` belongs to the student named by its folder. Every file
the grader writes goes through a temp file and ``os.replace`` (mode 0600), so a run killed at any
moment leaves complete files only; the per-student result JSON is the commit point of a student.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import interfaces

__all__ = ["Submission", "discover", "load_results", "write_gradebook", "feedback_markdown",
           "write_text_atomic", "result_is_current"]

SUFFIXES = (".ipynb", ".py")


@dataclass(frozen=True)
class Submission:
    student: str
    path: str
    chapter: str


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@-]+", "_", name).strip("._") or "student"


def _student_of(path: Path) -> str:
    return _safe(path.parent.name if interfaces.chapter_from_filename(path) else path.stem)


def discover(paths: list[str | Path], chapter: str | None) -> tuple[list[Submission], str, list[str]]:
    """Find submissions under ``paths``; return them, the chapter id and warnings.

    Raises:
        ValueError: no chapter given and none can be read from a file name, or nothing found.
    """
    files: list[tuple[Path, str | None]] = []  # (file, student if fixed by layout)
    for p in map(Path, paths):
        if p.is_file():
            files.append((p, None))
        elif p.is_dir():
            for f in sorted(p.iterdir()):
                if f.is_file() and f.suffix in SUFFIXES:
                    files.append((f, _safe(p.name) if interfaces.chapter_from_filename(f) else None))
                elif f.is_dir() and not f.name.startswith("."):
                    nested = sorted(x for x in f.rglob("*") if x.suffix in SUFFIXES and ".ipynb_checkpoints" not in x.parts)
                    files += [(x, _safe(f.name)) for x in nested if interfaces.chapter_from_filename(x)]
        else:
            raise ValueError(f"{p} does not exist")
    if chapter is None:
        found = next((c for f, _ in files if (c := interfaces.chapter_from_filename(f))), None)
        if found is None:
            raise ValueError("cannot tell the chapter from the file names; pass --chapter chNN")
        chapter = found.id
    ch = interfaces.get_chapter(chapter)
    subs: dict[str, Submission] = {}
    warnings = []
    for f, student in files:
        named = interfaces.chapter_from_filename(f)
        if named is not None and named.id != ch.id:
            continue  # another chapter's notebook
        student = student or _student_of(f)
        if student in subs:
            warnings.append(f"{student}: several notebooks for {ch.id}; grading {subs[student].path}, ignoring {f}")
            continue
        subs[student] = Submission(student, str(f.resolve()), ch.id)
    if not subs:
        raise ValueError(f"no {ch.id} notebooks found in {', '.join(map(str, paths))}")
    return sorted(subs.values(), key=lambda s: s.student), ch.id, warnings


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def result_is_current(result_file: Path, sub: Submission) -> bool:
    """Whether ``result_file`` already holds a complete grade of this exact notebook."""
    try:
        r = json.loads(result_file.read_text())
        return r.get("status") == "graded" and r.get("chapter") == sub.chapter and r.get("sha256") == sha256(sub.path)
    except (OSError, ValueError):
        return False


def load_results(results_dir: Path, chapter: str) -> list[dict]:
    out = []
    for f in sorted(Path(results_dir).glob("*.json")):
        try:
            r = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if r.get("chapter") == chapter:
            out.append(r)
    return sorted(out, key=lambda r: r["student"])


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    os.replace(tmp, path)


CSV_FIELDS = ["student", "chapter", "score", "max_score", "percent", "status", "passed", "failed", "notebook"]


def write_gradebook(path: Path, results: list[dict]) -> None:
    """Rewrite the CSV gradebook from ``results`` (sorted by student; no timestamps, so it is reproducible)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in results:
        passed = sum(t["outcome"] == "passed" for t in r["tests"])
        w.writerow({"student": r["student"], "chapter": r["chapter"], "score": f"{r['score']:g}",
                    "max_score": f"{r['max_score']:g}", "status": r["status"], "passed": passed,
                    "percent": f"{100 * r['score'] / r['max_score']:.1f}" if r["max_score"] else "0.0",
                    "failed": sum(t["outcome"] in ("failed", "error") for t in r["tests"]), "notebook": r["notebook"]})
    write_text_atomic(Path(path), buf.getvalue())


def feedback_markdown(r: dict) -> str:
    """Per-student feedback: score, loading problems, then every test with its points and reason."""
    ch = interfaces.get_chapter(r["chapter"])
    pct = f" ({100 * r['score'] / r['max_score']:.0f} %)" if r["max_score"] else ""
    lines = [f"# {ch.id} {ch.title}: feedback for {r['student']}", "",
             f"**Score: {r['score']:g} / {r['max_score']:g} points**{pct}", ""]
    if r["status"] != "graded":
        lines += ["The grader could not finish grading this notebook; your instructor will re-run it.", ""]
    if r.get("problems"):
        lines += ["## Problems found while loading your notebook", ""] + [f"- {p}" for p in r["problems"]] + [""]
    failed = [t for t in r["tests"] if t["outcome"] in ("failed", "error", "not run")]
    lines += [f"## Tests ({len(r['tests']) - len(failed)} of {len(r['tests'])} passed)", ""]
    for t in r["tests"]:
        mark = {"passed": "PASS", "skipped": "SKIP"}.get(t["outcome"], "FAIL")
        title = f": {t['title']}" if t.get("title") else ""
        lines.append(f"- **{mark}** `{t['id']}` ({t['points']:g}/{t['max_points']:g}){title}")
        if t["outcome"] not in ("passed",) and t.get("reason"):
            lines.append(f"  - why: {t['reason']}")
    return "\n".join(lines) + "\n"
