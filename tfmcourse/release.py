"""``tfmcourse release OUTDIR``: build what students get.

The reference package marks each exercise's body with ``# BEGIN SOLUTION chNN`` / ``# END SOLUTION``.
The release copies the package with every such region replaced by a stub that says what to implement
and where the book explains it, and adds the student notebooks from ``exercises/``. The hidden suites
and mutant corpora live under ``tests/`` and are never copied; the grading package itself holds no
expected values (its notebook loader is what ``tfmcourse.student`` uses to reuse a student's earlier
answers). Everything that is not an exercise (data, training, plots, the CLI) keeps working.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

__all__ = ["stub_source", "build_release", "CHAPTER_PAGES"]

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
# Chapter -> slug shared by book/chNN_<slug>.md, solutions/, exercises/ and tests/hidden/.
CHAPTER_PAGES = {"ch01": "ch01_data_flow", "ch02": "ch02_residuals_norms", "ch03": "ch03_qkv",
                 "ch04": "ch04_multihead", "ch05": "ch05_ffn", "ch06": "ch06_training", "ch07": "ch07_vit"}
# Parts of the package a student does not get (nothing at present: see the module docstring).
EXCLUDED: tuple[str, ...] = ()

_BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION (?P<chapter>ch\d\d)\s*$")
_END = re.compile(r"^\s*# END SOLUTION\s*$")
_DEF = re.compile(r"^(?P<indent>\s*)(?:async\s+)?def\s+(?P<name>\w+)")
_CLASS = re.compile(r"^(?P<indent>\s*)class\s+(?P<name>\w+)")


def _qualname(lines: list[str], i: int) -> str:
    """Name of the function (``Class.method``) whose body contains line ``i``."""
    func, func_indent = "?", None
    for j in range(i - 1, -1, -1):
        m = _DEF.match(lines[j])
        if m and func_indent is None:
            func, func_indent = m["name"], len(m["indent"])
            if func_indent == 0:
                return func
            continue
        m = _CLASS.match(lines[j])
        if m and func_indent is not None and len(m["indent"]) < func_indent:
            return f"{m['name']}.{func}"
    return func


def stub_source(text: str, chapters: set[str] | None = None) -> str:
    """Replace the solution regions of ``chapters`` (all if ``None``) by ``raise NotImplementedError``.

    Raises:
        ValueError: on an unclosed or nested region (so a broken marker can never leak a solution).
    """
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        m = _BEGIN.match(lines[i])
        if m is None:
            if _END.match(lines[i]):
                raise ValueError(f"line {i + 1}: END SOLUTION without BEGIN")
            out.append(lines[i])
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if _END.match(lines[j]) or _BEGIN.match(lines[j])), None)
        if end is None or _BEGIN.match(lines[end]):
            raise ValueError(f"line {i + 1}: BEGIN SOLUTION {m['chapter']} is not closed by END SOLUTION")
        chapter = m["chapter"]
        if chapters is None or chapter in chapters:
            page = CHAPTER_PAGES.get(chapter, chapter)
            out.append(f'{m["indent"]}raise NotImplementedError("implement {_qualname(lines, i)} '
                       f'(chapter {int(chapter[2:])}: book/{page}.md, exercises/{page}.ipynb)")')
        else:
            out.extend(lines[i + 1:end])
        i = end + 1
    return "\n".join(out)


def build_release(outdir: str | Path, *, force: bool = False) -> Path:
    """Write the student release to ``outdir``: ``exercises/``, the stubbed ``tfmcourse/``, packaging files."""
    out = Path(outdir)
    exercises = REPO_DIR / "exercises"
    if not exercises.is_dir() or not any(exercises.glob("ch*.ipynb")):
        raise FileNotFoundError(f"no exercise notebooks in {exercises}; run from a tfmcourse source checkout "
                                f"after `make exercises`")
    if out.exists():
        if not force:
            raise FileExistsError(f"{out} exists; pass --force to replace it")
        shutil.rmtree(out)
    shutil.copytree(exercises, out / "exercises", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", *EXCLUDED)
    shutil.copytree(PACKAGE_DIR, out / "tfmcourse", ignore=ignore)
    for path in (out / "tfmcourse").rglob("*.py"):
        path.write_text(stub_source(path.read_text()))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO_DIR / name).exists():
            shutil.copy2(REPO_DIR / name, out / name)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tfmcourse release", description=__doc__.split("\n\n")[0])
    p.add_argument("outdir", help="folder to write the release into")
    p.add_argument("--force", action="store_true", help="replace outdir if it exists")
    a = p.parse_args(argv)
    try:
        out = build_release(a.outdir, force=a.force)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"tfmcourse release: {e}", file=sys.stderr)
        return 1
    n = len(list((out / "exercises").glob("*.ipynb")))
    print(f"wrote {out}: {n} exercise notebooks and the stubbed tfmcourse package")
    return 0
