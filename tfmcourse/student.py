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

from .grading.interfaces import CHAPTERS, get_chapter, module_of, reference_object
from .grading.notebook import Cell, exec_cells

__all__ = ["setup", "load_answers", "install", "assemble", "restore", "is_stub", "AssembleReport"]

_STUB_MARK = 'raise NotImplementedError("implement '
_BLANK = "raise NotImplementedError()"  # what nbgrader leaves in an answer cell
_originals: dict[tuple[str, str], Any] = {}  # (module, name) -> reference object replaced by install()


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
                  if re.search(rf"^(def|class)\s+{n}\b", c.source, re.M) and _BLANK in c.source}
    problems += [f"{n} is not implemented yet in {path.name}" for n in sorted(unanswered)]
    problems += [f"{n} is not defined in {path.name}" for n in ch.names if n not in found]
    return {n: o for n, o in found.items() if n not in unanswered}, problems


def setup(chapter: str, namespace: dict[str, Any], folder: str | Path = ".", *, verbose: bool = True) -> dict[str, str]:
    """Give ``namespace`` every earlier chapter's names; returns ``{name: "reference" | "yours" | "missing"}``."""
    ch = get_chapter(chapter)
    origin: dict[str, str] = {}
    loaded: dict[str, Any] = {}
    for earlier in (c for c in CHAPTERS.values() if c.number < ch.number):
        refs = {}
        for name in earlier.names:
            try:
                refs[name] = reference_object(name)
            except ImportError:
                pass
        if refs and not any(is_stub(o) for o in refs.values()):
            loaded.update(refs)
            origin.update({n: "reference" for n in refs})
            continue
        try:
            mine, problems = load_answers(earlier.id, folder, prerequisites=dict(loaded))
        except FileNotFoundError:
            mine, problems = {}, [f"{_notebook_for(earlier.id, Path(folder)).name} not found"]
        loaded.update(mine)
        origin.update({n: ("yours" if n in mine else "missing") for n in earlier.names})
        if problems and verbose:
            print(f"{earlier.id}: " + "; ".join(problems), file=sys.stderr)
    namespace.update(loaded)
    install(loaded)
    if verbose and origin:
        kinds = {k: sorted(n for n, o in origin.items() if o == k) for k in ("reference", "yours", "missing")}
        for kind, names in kinds.items():
            if names:
                print(f"{kind:>9}: {', '.join(names)}")
    return origin


def install(objects: dict[str, Any]) -> None:
    """Swap ``objects`` in for the same-named objects in every loaded ``tfmcourse`` module."""
    from . import norm
    for name, obj in objects.items():
        home = module_of(name)
        ref = _originals.get((home, name), reference_object(name))
        for mod_name, mod in list(sys.modules.items()):
            if mod_name.startswith("tfmcourse") and getattr(mod, name, None) is ref and obj is not ref:
                _originals.setdefault((mod_name, name), ref)
                setattr(mod, name, obj)
        if name in ("LayerNorm", "RMSNorm") and obj is not ref:
            norm.PREFER_FUSED = False  # build_norm must build your class, not nn.LayerNorm


def restore() -> None:
    """Undo :func:`install`: put the reference objects back."""
    from . import norm
    for (mod_name, name), ref in _originals.items():
        setattr(sys.modules[mod_name], name, ref)
    _originals.clear()
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
