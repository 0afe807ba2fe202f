"""Use your own work: earlier chapters' answers in later notebooks, and all of them in the capstone.

Each exercise notebook starts with::

    from tfmcourse.student import setup
    setup("ch04", globals())

which puts the names of every *earlier* chapter into the notebook: the reference implementation when
it is installed (an instructor's checkout), otherwise your own answers, read from the answer cells of
your earlier notebooks in the same folder (``ch03_qkv.ipynb`` …). In the capstone::

    from tfmcourse.student import assemble
    report = assemble(".")          # install every chapter's answers into tfmcourse
    model = GPT(GPTConfig(...))     # ...so this GPT is built from your pieces

``assemble`` swaps your classes and functions in for the reference ones everywhere tfmcourse refers to
them (``tfmcourse.multihead.MultiHeadAttention``, ``tfmcourse.blocks.MultiHeadAttention`` …), and
``restore()`` undoes it.
"""
from __future__ import annotations

import importlib
import inspect
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .grading.interfaces import CHAPTERS, get_chapter, reference_object
from .grading.notebook import Cell, exec_cells

__all__ = ["setup", "release_info", "NEEDS", "load_answers", "install", "assemble", "restore", "is_stub",
           "AssembleReport"]

_STUB_MARK = 'raise NotImplementedError("implement '
_BLANK = "raise NotImplementedError()"  # what nbgrader leaves in an answer cell
_reference: dict[str, Any] = {}  # name -> the package's own object, as it was before any install()
_installed: dict[str, list[Any]] = {}  # name -> the objects install() has put in its place
# The earlier chapters whose pieces a chapter's notebook runs on (its checks, and its training runs through
# the package), and what those pieces run on in turn. Measured: each notebook's check cells pass with exactly
# these (tests/test_release_chapters.py) and its training runs hit no stub of another chapter.
NEEDS: dict[str, tuple[str, ...]] = {
    "ch01": (), "ch02": (), "ch03": (), "ch04": ("ch01", "ch03"), "ch05": ("ch01", "ch03", "ch04"),
    "ch06": ("ch01", "ch03", "ch04", "ch05"), "ch07": ("ch01", "ch03", "ch04", "ch05", "ch06"),
    "ch08": ("ch01", "ch02", "ch03", "ch04", "ch05", "ch06", "ch07"),
}


def is_stub(obj: Any) -> bool:
    """True for a release stub (its body only raises ``NotImplementedError("implement ...")``)."""
    targets = [obj]
    if inspect.isclass(obj):
        targets = [v for k, v in vars(obj).items() if inspect.isfunction(v)]
    for t in targets:
        try:
            if _STUB_MARK in inspect.getsource(t):
                return True
        except (OSError, TypeError):
            continue
    return False


def _notebook_for(chapter: str, folder: Path) -> Path:
    return folder / f"{get_chapter(chapter).slug}.ipynb"


def _answer_cells(path: Path) -> list[Cell]:
    """The answer cells (nbgrader ``solution: true``) of a notebook: the code a student wrote."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = []
    for i, c in enumerate(nb.get("cells", [])):
        meta = (c.get("metadata") or {}).get("nbgrader") or {}
        if c.get("cell_type") == "code" and meta.get("solution"):
            src = c.get("source", "")
            cells.append(Cell(i + 1, "".join(src) if isinstance(src, list) else src))
    return cells


# What the capstone's answers and checks use besides the chapters' pieces: the models built from them.
CAPSTONE_MODELS = {"GPT": "tfmcourse.gpt", "GPTConfig": "tfmcourse.gpt", "KVCache": "tfmcourse.multihead",
                   "ViT": "tfmcourse.vit", "ViTConfig": "tfmcourse.vit"}


def capstone_namespace() -> dict[str, Any]:
    """torch, nn, F, math, Tensor, every chapter's pieces as installed now, and the models built from them:
    the namespace the capstone's answer cells are graded in (after :func:`assemble`)."""
    import importlib
    names = {n: m for c in CHAPTERS.values() for n, m in c.names.items()} | CAPSTONE_MODELS
    return {**_prelude(), **{n: getattr(importlib.import_module(m), n) for n, m in names.items()}}


def _prelude() -> dict[str, Any]:
    return {"torch": torch, "nn": nn, "F": F, "math": math, "Tensor": Tensor}


def load_answers(chapter: str, folder: str | Path = ".", *, prerequisites: dict[str, Any] | None = None
                 ) -> tuple[dict[str, Any], list[str]]:
    """Run the answer cells of your ``chapter`` notebook in ``folder``; return its names and problems.

    Raises:
        FileNotFoundError: the notebook is not there.
    """
    ch = get_chapter(chapter)
    path = _notebook_for(ch.id, Path(folder))
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: do chapter {ch.number} ({ch.title}) first, "
                                f"or run this notebook next to it")
    prelude = {**_prelude(), **(prerequisites or {})}
    cells = _answer_cells(path)
    module, problems = exec_cells(cells, prelude, module_name=f"student_{ch.id}")
    found = {n: getattr(module, n) for n in ch.names if hasattr(module, n)}
    unanswered = {n for n in found for c in cells
                  if re.search(rf"^(def|class)\s+{n}\b", c.source, re.MULTILINE) and _BLANK in c.source}
    problems += [f"{n} is not implemented yet in {path.name}" for n in sorted(unanswered)]
    problems += [f"{n} is not defined in {path.name}" for n in ch.names if n not in found]
    return {n: o for n, o in found.items() if n not in unanswered}, problems


def release_info() -> Any | None:
    """The ``tfmcourse._release`` module of a student release (``SOLUTIONS_THROUGH``, ``BOOK``, ...), else ``None``."""
    try:
        return importlib.import_module(f"{__package__}._release")
    except ImportError:  # an instructor's checkout
        return None


def _chapters(numbers: list[int]) -> str:
    """[4, 5] -> "chapters 4 and 5"; [1, 2, 3] -> "chapters 1, 2 and 3"."""
    if len(numbers) == 1:
        return f"chapter {numbers[0]}"
    return f"chapters {', '.join(map(str, numbers[:-1]))} and {numbers[-1]}"


def _summary(chapter: str, state: dict[str, dict[str, str]], notes: dict[str, str]) -> str:
    """The one line :func:`setup` prints: where each earlier chapter's names came from, and what is missing.

    ``state`` maps an earlier chapter to ``{name: "yours" | "solution" | "reference" | "missing"}``.
    """
    def chapters_with(kind: str) -> list[str]:
        out = []
        for cid, names in state.items():
            mine = [n for n, o in names.items() if o == kind]
            if len(mine) == len(names):
                out.append(cid)
            elif mine:
                out.append(f"{cid} ({', '.join(mine)})")
        return out

    if state and all(o == "reference" for names in state.values() for o in names.values()):
        return f"{chapter}: earlier chapters from the reference package (instructor checkout)"
    parts = []
    if chapters_with("yours"):
        parts.append(f"your answers: {', '.join(chapters_with('yours'))}")
    if chapters_with("solution"):
        parts.append(f"released solutions: {', '.join(chapters_with('solution'))}")
    needed = [c for c in NEEDS.get(chapter, ()) if c in state and "missing" in state[c].values()]
    if needed:
        detail = "; ".join(notes[c] for c in needed if notes.get(c))
        parts.append(f"MISSING: {chapter} builds on {_chapters([int(c[2:]) for c in needed])}, not done yet in this "
                     f"folder ({detail}); the checks that use them fail until you finish "
                     f"{'them' if len(needed) > 1 else 'it'}")
    return f"{chapter}: " + (" | ".join(parts) if parts else "uses no earlier chapter")


def _why_missing(missing: list[str], problems: list[str], notebook: str) -> str:
    """``ch04_multihead.ipynb: MultiHeadAttention, KVCache not written yet; cell 7 (...) raised ...``."""
    if any(p.endswith(" not found") for p in problems):
        return f"{notebook} not found"
    blank = [n for n in missing if f"{n} is not implemented yet in {notebook}" in problems]
    why = [f"{', '.join(blank)} not written yet"] if blank else []
    errors = [p for p in problems if p.startswith("cell ")]
    if errors:
        why.append(errors[0] + (f" (and {len(errors) - 1} more cells)" if len(errors) > 1 else ""))
    elif len(blank) < len(missing):
        why.append(f"{', '.join(n for n in missing if n not in blank)} not defined")
    return f"{notebook}: {'; '.join(why)}"


def setup(chapter: str, namespace: dict[str, Any], folder: str | Path = ".", *, verbose: bool = True
          ) -> dict[str, str]:
    """Give ``namespace`` every earlier chapter's names and print, in one line, where they came from.

    For each name: in an instructor's checkout, the reference package; in a student release, your own
    answer from your earlier notebook in ``folder`` when it is written and loads, otherwise the released
    solution (``tfmcourse release --solutions-through``) when there is one. A name that has neither is
    the release's stub, which raises ``NotImplementedError`` naming the exercise to do.

    Returns:
        ``{name: "reference" | "yours" | "solution" | "missing"}``.
    """
    ch = get_chapter(chapter)
    restore()  # run again in the same kernel: start from the package's own objects, not last run's answers
    student_release = release_info() is not None
    state: dict[str, dict[str, str]] = {}
    notes: dict[str, str] = {}
    loaded: dict[str, Any] = {}
    for earlier in (c for c in CHAPTERS.values() if c.number < ch.number):
        refs = {}
        for name in earlier.names:
            try:
                refs[name] = reference_object(name)
            except ImportError:
                pass
        if not student_release and refs and not any(is_stub(o) for o in refs.values()):
            loaded.update(refs)
            state[earlier.id] = {n: "reference" for n in refs}
            continue
        path = _notebook_for(earlier.id, Path(folder))
        try:
            mine, problems = load_answers(earlier.id, folder, prerequisites=dict(loaded))
        except FileNotFoundError:
            mine, problems = {}, [f"{path.name} not found"]
        state[earlier.id] = {}
        for name in earlier.names:
            if name in mine:
                loaded[name], state[earlier.id][name] = mine[name], "yours"
            elif name in refs and not is_stub(refs[name]):
                loaded[name], state[earlier.id][name] = refs[name], "solution"
            else:
                state[earlier.id][name] = "missing"
                if name in refs:  # the stub: using it says which exercise to do (not a NameError)
                    loaded[name] = refs[name]
        missing = [n for n, o in state[earlier.id].items() if o == "missing"]
        if missing:
            notes[earlier.id] = _why_missing(missing, problems, path.name)
    namespace.update(loaded)
    install({n: loaded[n] for names in state.values() for n, o in names.items() if o == "yours"})
    if verbose:
        print(_summary(ch.id, state, notes))
    return {n: o for names in state.values() for n, o in names.items()}


def _package_object(name: str) -> Any:
    """The package's own object for ``name``, remembered before anything is swapped in."""
    if name not in _reference:
        _reference[name] = reference_object(name)
    return _reference[name]


def _replace(name: str, olds: list[Any], new: Any) -> None:
    """Set ``name`` to ``new`` in every loaded tfmcourse module where it is one of ``olds``."""
    for mod_name, mod in list(sys.modules.items()):
        if mod_name.startswith("tfmcourse") and any(getattr(mod, name, None) is o for o in olds):
            setattr(mod, name, new)


def install(objects: dict[str, Any]) -> None:
    """Swap ``objects`` in for the same-named objects in every loaded ``tfmcourse`` module (also where an
    earlier :func:`install` put a previous version, so running it again takes your latest answers)."""
    from . import norm
    for name, obj in objects.items():
        ref = _package_object(name)
        _replace(name, [ref, *_installed.get(name, [])], obj)
        if obj is not ref:
            _installed.setdefault(name, []).append(obj)
            if name in ("LayerNorm", "RMSNorm"):
                norm.PREFER_FUSED = False  # build_norm must build your class, not nn.LayerNorm


def restore() -> None:
    """Undo :func:`install`: put the package's own objects back, also in modules imported since."""
    from . import norm
    for name, objs in _installed.items():
        _replace(name, objs, _reference[name])
    _installed.clear()
    norm.PREFER_FUSED = True


@dataclass
class AssembleReport:
    """Which pieces came from your notebooks, and what went wrong loading them."""

    yours: list[str] = field(default_factory=list)
    reference: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"yours:     {', '.join(self.yours) or '-'}", f"reference: {', '.join(self.reference) or '-'}"]
        if self.missing:
            lines.append(f"missing:   {', '.join(self.missing)} (the model cannot be built without them)")
        lines += [f"problem:   {p}" for p in self.problems]
        return "\n".join(lines)


def assemble(folder: str | Path = ".", chapters: list[str] | None = None, *, fallback_to_reference: bool = True
             ) -> AssembleReport:
    """Install your answers of ``chapters`` (default: all) from the notebooks in ``folder`` into tfmcourse.

    A chapter whose notebook is missing or broken keeps the reference pieces when they exist and
    ``fallback_to_reference`` is true (an instructor's checkout); in the student release they are stubs.
    """
    restore()  # run again (after fixing a chapter): start from the package's own objects
    report = AssembleReport()
    loaded: dict[str, Any] = {}  # the student's pieces, to install
    available: dict[str, Any] = {}  # what later chapters' answers may use: theirs, or the reference fallback
    for ch in (get_chapter(c) for c in (chapters or list(CHAPTERS))):
        try:
            mine, problems = load_answers(ch.id, folder, prerequisites=dict(available))
        except FileNotFoundError as e:
            mine, problems = {}, [str(e)]
        report.problems += [f"{ch.id}: {p}" for p in problems]
        for name in ch.names:
            if name in mine and not is_stub(mine[name]):
                loaded[name] = available[name] = mine[name]
                report.yours.append(name)
                continue
            ref = reference_object(name)
            if fallback_to_reference and not is_stub(ref):
                available[name] = ref
                report.reference.append(name)
            else:
                report.missing.append(name)
    install(loaded)
    return report
