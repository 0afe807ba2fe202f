"""Loading a submission: the code of a notebook, executed cell by cell into a fresh module.

Reading (trusted side, :func:`read_cells`): the ``.ipynb`` is parsed as JSON only; code cells are taken
in order; nbgrader test cells (``metadata.nbgrader.grade`` true and not ``solution``) and the visible checks
(tagged ``visible-check``) are skipped, so the notebook's own checks never run in the grader. Also accepted: a ``.py`` file, split into
cells at ``# %%`` lines (how the mutant corpora are kept diffable).

Executing (implementation side, :func:`exec_cells`): the namespace starts with the chapter's
prerequisites from the reference; each cell is compiled as written, or with IPython magics (``%``,
``%%``) and shell escapes (``!``) dropped if it does not compile as it is. A cell that raises
(``SystemExit`` included) is reported and loading goes on with the next one.
"""
from __future__ import annotations

import ast
import json
import re
import sys
import traceback
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

__all__ = ["Cell", "NotebookError", "read_cells", "split_cells", "prepare_source", "exec_cells", "MAX_NOTEBOOK_BYTES",
           "py_to_notebook"]

MAX_NOTEBOOK_BYTES = 20 * 2**20
_MAGIC_LINE = re.compile(r"^\s*[%!]")


@dataclass(frozen=True)
class Cell:
    """A code cell: its position among the notebook's cells (1-based, all kinds counted) and source."""

    index: int
    source: str

    def first_line(self) -> str:
        line = next((ln.strip() for ln in self.source.splitlines() if ln.strip()), "")
        return line[:60] + ("…" if len(line) > 60 else "")


class NotebookError(Exception):
    """The file is not a notebook the grader can read; the message says what to fix."""


CHECK_TAG = "visible-check"  # a student's own quick check: run in Jupyter, never by the grader


def _is_test_cell(cell: dict) -> bool:
    """An nbgrader test cell, or a visible check (tagged ``visible-check``): the grader runs neither."""
    meta = cell.get("metadata") or {}
    if not isinstance(meta, dict):
        return False
    tags = meta.get("tags") if isinstance(meta.get("tags"), list) else []
    nb = meta.get("nbgrader") or {}
    return CHECK_TAG in tags or (isinstance(nb, dict) and bool(nb.get("grade")) and not nb.get("solution"))


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    if isinstance(src, list):
        src = "".join(s for s in src if isinstance(s, str))
    return src if isinstance(src, str) else ""


def _is_answer_cell(cell: dict) -> bool:
    meta = cell.get("metadata") or {}
    nb = meta.get("nbgrader") or {} if isinstance(meta, dict) else {}
    return isinstance(nb, dict) and bool(nb.get("solution"))


def read_cells(path: str | Path, *, answers_only: bool = False) -> list[Cell]:
    """The code cells of a notebook (or a ``# %%`` script) to execute, nbgrader test cells left out
    (``answers_only``: only nbgrader answer cells, e.g. the capstone's, whose other cells train models).

    Raises:
        NotebookError: unreadable, too large, not notebook JSON, or no code cells.
    """
    from .intake import Rejected, read_student_file  # never follows a link, reads at most the cap

    path = Path(path)
    try:
        text = read_student_file(path, MAX_NOTEBOOK_BYTES).decode("utf-8", errors="replace")
    except Rejected as e:
        raise NotebookError(f"{path.name}: {e}") from None
    if path.suffix == ".py":
        cells = split_cells(text)
    else:
        try:
            nb = json.loads(text)
        except json.JSONDecodeError as e:
            raise NotebookError(f"{path.name} is not valid notebook JSON (line {e.lineno}: {e.msg}); "
                                f"open it in Jupyter, save it again and resubmit") from None
        except (RecursionError, ValueError) as e:
            raise NotebookError(f"{path.name} is not notebook JSON the grader can read ({type(e).__name__}); "
                                f"open it in Jupyter, save it again and resubmit") from None
        raw = nb.get("cells") if isinstance(nb, dict) else None
        if not isinstance(raw, list):
            raise NotebookError(f"{path.name} has no 'cells' list: it is not a Jupyter notebook (nbformat 4)")
        cells = [Cell(i + 1, _source(c)) for i, c in enumerate(raw)
                 if isinstance(c, dict) and c.get("cell_type") == "code" and not _is_test_cell(c)
                 and (not answers_only or _is_answer_cell(c))
                 and _source(c).strip()]
    if not cells:
        raise NotebookError(f"{path.name} has no code cells with content: nothing to grade")
    return cells


def split_cells(text: str) -> list[Cell]:
    """The cells of a ``# %%`` script (blank ones dropped), numbered from 1 as a notebook's would be."""
    parts = re.split(r"^# %%.*$", text, flags=re.M)
    return [Cell(i + 1, p.strip("\n")) for i, p in enumerate(parts) if p.strip()]


def prepare_source(source: str) -> str:
    """The cell's source as Python: unchanged if it compiles, else without magics and shell escapes."""
    try:
        compile(source, "<cell>", "exec", dont_inherit=True)
        return source
    except SyntaxError:
        pass
    if source.lstrip().startswith("%%"):
        return ""  # a cell magic (%%time, %%capture, ...): the whole cell is not Python
    return "\n".join("pass  # (magic dropped)" if _MAGIC_LINE.match(ln) else ln for ln in source.splitlines())


def _summary(exc: BaseException, filename: str) -> str:
    """``Type: message (line N)`` where line N is the last line of the cell on the traceback."""
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    if isinstance(exc, SyntaxError) and exc.filename == filename:
        line = exc.lineno
    msg = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
    where = f" (line {line})" if line else ""
    return f"{type(exc).__name__}{': ' + msg if msg else ''}{where}"


def exec_cells(cells: list[Cell], prelude: dict[str, Any], module_name: str = "submission",
               on_cell: Callable[[Cell], None] | None = None) -> tuple[types.ModuleType, list[str]]:
    """Execute ``cells`` in a fresh module whose globals start as ``prelude``; return it and the problems.

    Each problem is one line such as ``cell 4 (`def causal_mask(T, S=None):`) raised NameError: ... (line 3)``.
    """
    module = types.ModuleType(module_name)
    module.__dict__.update(prelude)
    module.__dict__["__builtins__"] = __builtins__
    sys.modules[module_name] = module  # so dataclasses and pickling resolve the module
    problems: list[str] = []
    flags = [0]  # __future__ features imported by earlier statements: they hold for the rest of the session
    for cell in cells:
        if on_cell is not None:
            on_cell(cell)
        filename = f"<cell {cell.index}>"
        try:
            run_cell(prepare_source(cell.source), filename, module.__dict__, flags)
        except BaseException as e:  # noqa: BLE001 - SystemExit and KeyboardInterrupt in a cell are reported too
            problems.append(f"cell {cell.index} (`{cell.first_line()}`) raised {_summary(e, filename)}")
    return module, problems


def run_cell(source: str, filename: str, namespace: dict, flags: list[int]) -> None:
    """Run a cell as a Jupyter kernel does: statement by statement, with the ``__future__`` features of every
    earlier statement (so ``from __future__ import annotations`` works anywhere, and only for what follows),
    and none of the grader's own (``dont_inherit``)."""
    import __future__

    tree = ast.parse(source, filename)
    for node in tree.body:
        code = compile(ast.Module([node], type_ignores=[]), filename, "exec", flags=flags[0], dont_inherit=True)
        exec(code, namespace)
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            for alias in node.names:
                feature = getattr(__future__, alias.name, None)
                flags[0] |= getattr(feature, "compiler_flag", 0)


def py_to_notebook(source: str) -> dict:
    """A minimal nbformat-4 notebook with one code cell per ``# %%`` section of ``source``."""
    parts = [p.strip("\n") for p in re.split(r"^# %%.*$", source, flags=re.M) if p.strip()]
    cells = [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [],
              "source": p} for i, p in enumerate(parts)]
    return {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                                        "name": "python3"}}, "nbformat": 4, "nbformat_minor": 5}
