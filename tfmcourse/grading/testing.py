"""Submissions made up for testing the grader: the reference as a notebook, the blank release, mutants.

Used by ``tests/test_grading_*.py`` and ``tools/bench_grading.py``; generic over chapters.
"""
from __future__ import annotations

import ast
import fcntl
import importlib
import inspect
import json
import os
from pathlib import Path
from typing import Any, Callable

from . import interfaces
from .notebook import py_to_notebook
from .sandbox import REPO_DIR

__all__ = ["reference_source", "blank_source", "write_notebook", "mutant_files", "mutant_source",
           "chapters_with_suites", "once_per_run"]

MUTANTS_DIR = REPO_DIR / "tests" / "mutants"


def reference_source(chapter: str) -> str:
    """The chapter's reference modules as notebook cells, one per module, as a student would write them.

    Relative imports become absolute (``from tfmcourse.x import ...``), except imports from another of
    the chapter's own modules, which are dropped: those names are defined by an earlier cell, as in a
    notebook (the worker's copy of those modules is stubbed). A module that also holds other
    chapters' names (e.g. ``blocks``) comes in whole; the grader only looks at the chapter's names.
    """
    ch = interfaces.get_chapter(chapter)
    cells = []
    for module in ch.modules:
        src = inspect.getsource(importlib.import_module(module))
        lines = src.splitlines(keepends=True)
        package = module.rsplit(".", 1)[0]
        for node in reversed(ast.parse(src).body):
            if not isinstance(node, ast.ImportFrom) or not node.level:
                continue
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            target = f"{base}.{node.module}" if node.module else base
            names = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in node.names)
            own = target in ch.modules
            lines[node.lineno - 1:node.end_lineno] = [] if own else [f"from {target} import {names}\n"]
        cells.append("".join(lines))  # its own `from __future__ import annotations` stays: cells compile alone
    return "\n# %%\n".join(cells)


def blank_source(chapter: str, body: str = "# YOUR CODE HERE\nraise NotImplementedError()") -> str:
    """What a student starts from: every interface name present, its functions (and class constructors)
    doing only ``body`` (default: raising ``NotImplementedError``, as the release does)."""
    out = ["import torch\nfrom torch import nn"]
    for name in interfaces.get_chapter(chapter).names:
        try:
            is_class = isinstance(interfaces.reference_object(name), type)
        except ImportError:
            is_class = name[:1].isupper()
        if is_class:
            out.append(f"class {name}(nn.Module):\n    def __init__(self, *args, **kwargs):\n"
                       "        super().__init__()\n"
                       + "".join(f"        {line}\n" for line in body.splitlines())
                       + "\n    def forward(self, *args, **kwargs):\n"
                       + "".join(f"        {line}\n" for line in body.splitlines()))
        else:
            out.append(f"def {name}(*args, **kwargs):\n" + "".join(f"    {line}\n" for line in body.splitlines()))
    return "\n# %%\n".join(out)


# Submissions that do nothing in one way or another: none may earn a point.
DO_NOTHING = {"raises NotImplementedError": "raise NotImplementedError()",
              "raises ValueError": "raise ValueError('no')", "returns None": "return None",
              "returns its first argument": "return args[0] if args else None"}


def write_notebook(path: str | Path, source: str) -> Path:
    """Write ``source`` (``# %%`` cells) as an ``.ipynb`` at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(py_to_notebook(source), indent=1))
    return path


def mutant_files(chapter: str) -> list[Path]:
    """``tests/mutants/chNN/*.py`` (files starting with ``_`` are helpers, not mutants)."""
    return sorted(p for p in (MUTANTS_DIR / chapter).glob("*.py") if not p.name.startswith("_"))


def mutant_source(path: str | Path) -> str:
    """A whole submission with one mistake: the reference as notebook cells, then the mutant's cells.

    A mutant file holds only what it breaks (a function, or a class that overrides one method of the
    correct class defined above it), so the mistake is all there is to read. Its chapter is its folder.
    """
    path = Path(path)
    return reference_source(path.parent.name) + "\n# %%\n" + path.read_text()


def chapters_with_suites() -> list[str]:
    """Chapters whose hidden suite exists in ``tests/hidden``."""
    from .sandbox import HIDDEN_DIR
    return [c.id for c in interfaces.CHAPTERS.values() if (HIDDEN_DIR / c.suite_file()).exists()]


_ONCE: dict[tuple, dict] = {}


def once_per_run(tmp_path_factory: Any, name: str, compute: Callable[[Path], dict]) -> dict:
    """``compute(fresh_dir)`` once per test run, also under pytest-xdist: workers share the JSON result.

    A module-scoped fixture would otherwise grade the same submissions once in every xdist worker that
    runs one of its tests. The result must be JSON-serialisable.
    """
    uid = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not uid:
        key = (id(tmp_path_factory), name)
        if key not in _ONCE:
            _ONCE[key] = json.loads(json.dumps(compute(tmp_path_factory.mktemp(name))))
        return _ONCE[key]
    root = tmp_path_factory.getbasetemp().parent / f"{name}-{uid}"
    root.mkdir(exist_ok=True)
    with open(root / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other workers wait here, then read the result
        done = root / "result.json"
        if not done.exists():
            work = root / "work"
            work.mkdir()
            done.write_text(json.dumps(compute(work)))
        return json.loads(done.read_text())


def grade_in_process(chapter: str, source: str, module_name: str = "submission") -> dict:
    """Grade ``source`` (``# %%`` cells) in this process, loaded the way the sandbox worker loads a
    notebook (earlier chapters' names from the reference); the result of :func:`~.runner.run_suite`
    plus the loading ``problems``."""
    from .impl import LocalImpl
    from .notebook import exec_cells, split_cells
    from .runner import run_suite

    prelude, _ = interfaces.reference_namespace(interfaces.prerequisites(chapter))
    module, problems = exec_cells(split_cells(source), prelude, module_name=module_name)
    result = run_suite(chapter, lambda ch: LocalImpl(module.__dict__, ch))
    result["problems"] = problems
    return result


def names_mutant(diagnosis: list[dict], mutant: str) -> bool:
    """Whether a diagnosis names ``mutant`` among its best matches (mistakes that behave alike tie)."""
    best = [(d["exact"], d["explains"]) for d in diagnosis[:1]]
    return mutant in [d["mutant"] for d in diagnosis if [(d["exact"], d["explains"])] == best]


def mutant_stats(chapter: str) -> list[dict]:
    """Per mutant of ``chapter``: its description, score, the ids of the tests it fails and whether the
    known-mistake diagnosis names it."""
    rows = []
    for path in mutant_files(chapter):
        r = diagnose_in_process(chapter, mutant_source(path), module_name=f"mutant_{chapter}_{path.stem}")
        doc = path.read_text().splitlines()[0].strip('"')
        rows.append({"mutant": path.stem, "doc": doc, "score": r["score"], "max_score": r["max_score"],
                     "failed": [t["id"] for t in r["tests"] if t["outcome"] != "passed"],
                     "diagnosed": names_mutant(r.get("diagnosis", []), path.stem)})
    return rows


def diagnose_in_process(chapter: str, source: str, module_name: str = "submission") -> dict:
    """Like :func:`grade_in_process`, with the known-mistake diagnosis of :mod:`.diagnose`."""
    from .impl import LocalImpl
    from .notebook import exec_cells, split_cells
    from .runner import run_suite

    prelude, _ = interfaces.reference_namespace(interfaces.prerequisites(chapter))
    module, problems = exec_cells(split_cells(source), prelude, module_name=module_name)
    result = run_suite(chapter, lambda ch: LocalImpl(module.__dict__, ch), diagnose=True)
    result["problems"] = problems
    return result


def nbgrader_submission(release: dict, source: str) -> dict:
    """A student's notebook as nbgrader receives it: the released ``release`` notebook with ``source``
    (``# %%`` cells, e.g. a mutant) written into its first answer cell, the other answer cells emptied,
    and the cells that only explore or train (not graded, not locked) emptied too so that autograding is
    quick. Graded and locked cells are untouched, as nbgrader requires."""
    nb = json.loads(json.dumps(release))
    first = True
    for cell in nb["cells"]:
        meta = (cell.get("metadata") or {}).get("nbgrader") or {}
        if cell["cell_type"] != "code" or meta.get("locked") or (meta.get("grade") and not meta.get("solution")):
            continue
        if meta.get("solution") and first:
            cell["source"], first = source.replace("# %%", "# (cell)"), False
        else:
            cell["source"] = "pass"
    return nb


MUTANT_TABLE = REPO_DIR / "book" / "_generated" / "mutant_stats.md"


def stats_row(counts: list[int], diagnosed: list[bool]) -> dict:
    """One chapter's corpus: how many mutants, failing tests per mutant (median, maximum), and how many of
    them the diagnosis names."""
    import statistics
    return {"mutants": len(counts), "median": statistics.median(counts), "max": max(counts),
            "diagnosed": sum(diagnosed)}


def mutant_table(summary: dict[str, dict]) -> str:
    """The instructor guide's table of :func:`stats_row` per chapter (``tools/mutant_stats.py --write``)."""
    lines = ["| chapter | mutants | failing tests per mutant: median | max | diagnosis names the mistake |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {ch} | {r['mutants']} | {r['median']:g} | {r['max']} | {r['diagnosed']} of {r['mutants']} "
              f"({100 * r['diagnosed'] / r['mutants']:.0f} %) |" for ch, r in sorted(summary.items())]
    return "\n".join(lines) + "\n"


# --- the capstone: a submission is a folder of notebooks -------------------------------------------------------

SOLUTIONS_DIR = REPO_DIR / "solutions"
EXERCISES_DIR = REPO_DIR / "exercises"


def capstone_mutant_cells(path: str | Path) -> dict[str, list[str]]:
    """The cells of a capstone mutant, by the chapter notebook they go into.

    A capstone mutant (``tests/mutants/ch08/*.py``) is a folder: the reference's chapter notebooks with one
    mistake. Its file holds only the mistake, in ``# %%`` cells; a cell headed ``# %% chNN`` is appended as an
    answer cell to that chapter's notebook (after its correct answers, so an override such as
    ``class KVCache(KVCache): ...`` replaces the correct piece), an untagged cell to the capstone's.
    """
    import re

    text = Path(path).read_text()
    out: dict[str, list[str]] = {}
    marks = list(re.finditer(r"^# %%[ \t]*(ch\d\d)?[^\n]*$", text, flags=re.MULTILINE))
    for i, m in enumerate(marks):
        body = text[m.end():marks[i + 1].start() if i + 1 < len(marks) else len(text)].strip("\n")
        if body.strip():
            out.setdefault((m.group(1) or interfaces.CAPSTONE.id).lower(), []).append(body)
    return out


def capstone_folder(dest: str | Path, *, blank: bool = False, mutant: str | Path | None = None,
                    drop: tuple[str, ...] = ()) -> Path:
    """Write a student's capstone hand-in into ``dest``: every chapter notebook and the capstone's, as the course
    names them, from ``solutions/`` (the reference's answers) or, with ``blank``, from ``exercises/`` (the release,
    nothing written). ``mutant`` adds its cells (:func:`capstone_mutant_cells`); chapters in ``drop`` are left out."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    extra = capstone_mutant_cells(mutant) if mutant else {}
    for ch in interfaces.GRADED.values():
        if ch.id in drop:
            continue
        nb = json.loads(((EXERCISES_DIR if blank else SOLUTIONS_DIR) / f"{ch.slug}.ipynb").read_text())
        for i, source in enumerate(extra.get(ch.id, [])):
            nb["cells"].append({"cell_type": "code", "execution_count": None, "id": f"mutant-{i}", "outputs": [],
                                "metadata": {"nbgrader": {"grade": False, "grade_id": f"mutant_{i}", "locked": False,
                                                          "schema_version": 3, "solution": True, "task": False}},
                                "source": source})
        (dest / f"{ch.slug}.ipynb").write_text(json.dumps(nb, indent=1) + "\n")
    return dest


def grade_capstone_in_process(folder: str | Path, select: str | list[str] | None = None) -> dict:
    """Grade a complete capstone folder in this process: its chapter answers installed into ``tfmcourse``
    (``assemble``, undone afterwards), then the capstone's answer cells with the worker's prelude.

    Only for folders with every piece (mutants): a piece that is missing keeps the reference here, where the
    sandbox has a stub. Blank and incomplete folders are graded through ``tfmcourse grade``.
    """
    from ..student import assemble, capstone_namespace, restore
    from .impl import LocalImpl
    from .notebook import exec_cells, read_cells
    from .runner import run_suite

    folder = Path(folder)
    # install() patches only modules imported before it, and a later assemble() replaces only reference objects:
    # import every module the models use first, and start from the reference
    used = {"tfmcourse.gpt", "tfmcourse.vit", *(m for c in interfaces.CHAPTERS.values() for m in c.names.values())}
    for module in sorted(used):
        importlib.import_module(module)
    restore()
    try:
        report = assemble(folder, fallback_to_reference=False)
        prelude = capstone_namespace()  # the installed pieces, read after assemble (as in the worker)
        cells = read_cells(folder / f"{interfaces.CAPSTONE.slug}.ipynb", answers_only=True)
        module, problems = exec_cells(cells, prelude, module_name=f"capstone_{folder.name}")
        result = run_suite(interfaces.CAPSTONE.id, lambda ch: LocalImpl(module.__dict__, ch), select=select)
    finally:
        restore()
    result["problems"] = list(report.problems) + problems + [f"missing: {n}" for n in report.missing]
    return result


def capstone_mutant_stats(folder: str | Path, answer_tests: str = "top_p", steps: tuple[str, ...] = ()) -> list[dict]:
    """:func:`mutant_stats` for the capstone.

    A mutant of the capstone's own answer (untagged cells) can fail only the tests that call it (``-k
    answer_tests``): it is graded on those in-process, with the known-mistake diagnosis, and the other tests count
    as passed. A mutant of an earlier chapter's piece is a folder built under ``folder``, graded with the whole suite
    (:func:`grade_capstone_in_process`); the diagnosis cannot replay it (its pieces are installed into tfmcourse),
    so for it ``diagnosed`` means that every failing test's reason names the chapter of the broken piece.
    ``steps``: ``-k`` selections tried in order until the mutant loses points, for a quick "does every mutant lose
    points" check (cheap tests first, then one training at a time); ``failed`` is then a lower bound.
    """
    from .impl import LocalImpl
    from .notebook import exec_cells, split_cells
    from .runner import run_suite, suite_points

    points = suite_points(interfaces.CAPSTONE.id)
    total = sum(points.values())
    rows = []
    for path in mutant_files(interfaces.CAPSTONE.id):
        chapters = set(capstone_mutant_cells(path))
        if chapters == {interfaces.CAPSTONE.id}:
            module, _ = exec_cells(split_cells(mutant_source(path)), {}, module_name=f"mutant_ch08_{path.stem}")
            r = run_suite(interfaces.CAPSTONE.id, lambda ch, ns=module.__dict__: LocalImpl(ns, ch),
                          select=answer_tests, diagnose=True)
            failing = [t for t in r["tests"] if t["outcome"] != "passed"]
            diagnosed = names_mutant(r.get("diagnosis", []), path.stem)
        else:
            built = capstone_folder(Path(folder) / path.stem, mutant=path)
            for select in steps or (None,):
                r = grade_capstone_in_process(built, select=select)
                if r["score"] < r["max_score"]:
                    break
            failing = [t for t in r["tests"] if t["outcome"] != "passed"]
            named = [f"chapter {int(c[2:])}" for c in sorted(chapters - {interfaces.CAPSTONE.id})]
            diagnosed = bool(failing) and all(any(n in t["reason"] for n in named) for t in failing)
        failed = [t["id"] for t in failing]
        rows.append({"mutant": path.stem, "doc": path.read_text().splitlines()[0].strip('"'),
                     "score": total - sum(points.get(t, 0.0) for t in failed), "max_score": total, "failed": failed,
                     "diagnosed": diagnosed, "reasons": {t["id"]: t["reason"] for t in failing}})
    return rows
