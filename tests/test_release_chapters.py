"""Per-chapter releases: a chapter's notebook works with the earlier chapters it needs, from the
student's own notebooks or, once released (``--solutions-through``), from the solutions.

Each notebook runs here as the grader loads it (every code cell in order, in one fresh module, no
kernel, so the "not graded" training runs and plots are skipped) against a release of the package
put first on ``PYTHONPATH``. Written generically over the chapters of ``tfmcourse.grading.interfaces``.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

from tfmcourse.exercises import REPO_DIR
from tfmcourse.grading.interfaces import CHAPTERS
from tfmcourse.release import build_release
from tfmcourse.release_notebooks import fill_answers, read_notebook, write_notebook
from tfmcourse.student import NEEDS

pytestmark = pytest.mark.skipif(not any((REPO_DIR / "exercises").glob("ch*.ipynb")),
                                reason="exercises/ not generated yet")

RUN = textwrap.dedent('''
    import json, sys
    import matplotlib
    matplotlib.use("Agg")
    import tfmcourse
    assert tfmcourse.__file__.startswith(sys.argv[2]), tfmcourse.__file__
    from tfmcourse.grading.notebook import Cell, exec_cells
    nb = json.load(open(sys.argv[1]))
    src = lambda c: "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
    cells = [Cell(i + 1, src(c)) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]
    _, problems = exec_cells(cells, {}, module_name="notebook")
    print("PROBLEMS " + json.dumps(problems))
''')


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    root = tmp_path_factory.mktemp("releases")
    return {"none": build_release(root / "plain", book_html=None).path,
            "ch05": build_release(root / "through5", book_html=None, solutions_through="ch05",
                                  solution_notebooks=True).path}


def notebook_folder(path, release, filled=(), blank=()):
    """A student's folder: the chapters in ``filled`` answered with the solutions, those in ``blank`` as released."""
    path.mkdir()
    for cid in [*filled, *blank]:
        name = f"{CHAPTERS[cid].slug}.ipynb"
        nb = read_notebook(release / "exercises" / name)
        write_notebook(fill_answers(nb, read_notebook(REPO_DIR / "solutions" / name)) if cid in filled else nb,
                       path / name)
    return path


def run(release, folder, chapter):
    """Run ``chapter``'s notebook in ``folder``; return its output lines and the cells that raised."""
    r = subprocess.run([sys.executable, "-c", RUN, f"{CHAPTERS[chapter].slug}.ipynb", str(release)], cwd=folder,
                       env={**os.environ, "PYTHONPATH": str(release)}, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0 and "PROBLEMS " in r.stdout, r.stderr[-3000:]
    lines = r.stdout.splitlines()
    return lines[:-1], json.loads(lines[-1].removeprefix("PROBLEMS "))


def test_solutions_through_keeps_those_chapters_reference(releases):
    rel = releases["ch05"]
    ffn, blocks = (rel / "tfmcourse" / "ffn.py").read_text(), (rel / "tfmcourse" / "blocks.py").read_text()
    assert "implement FeedForward" not in ffn and "implement EncoderBlock" not in blocks
    assert "implement DecoderBlock.forward (chapter 6" in blocks
    assert "SOLUTIONS_THROUGH = 'ch05'" in (rel / "tfmcourse" / "_release.py").read_text()
    solved = sorted(p.name for p in (rel / "solutions").glob("*.ipynb"))
    assert solved == [f"{CHAPTERS[f'ch0{n}'].slug}.ipynb" for n in range(1, 6)]
    cells = read_notebook(rel / "solutions" / "ch03_qkv.ipynb")["cells"]
    text = "\n".join("".join(c["source"]) for c in cells)
    assert "### BEGIN HIDDEN TESTS" not in text and "### BEGIN SOLUTION" not in text
    answers = ["".join(c["source"]) for c in cells if (c["metadata"].get("nbgrader") or {}).get("solution")]
    assert answers and not any("raise NotImplementedError()" in a for a in answers)
    assert "Solutions of chapters 1 to 5 are included" in (rel / "README.md").read_text()
    assert "implement FeedForward" in (releases["none"] / "tfmcourse" / "ffn.py").read_text()


def test_ch06_checks_pass_with_chapters_4_and_5_blank_once_their_solutions_are_released(releases, tmp_path):
    folder = notebook_folder(tmp_path / "work", releases["ch05"], filled=("ch01", "ch02", "ch03", "ch06"),
                             blank=("ch04", "ch05"))
    out, problems = run(releases["ch05"], folder, "ch06")
    assert problems == []
    said = [ln for ln in out if ln.startswith("ch06:")]
    assert len(said) == 1, out
    assert "your answers: ch01, ch02, ch03" in said[0] and "released solutions: ch04, ch05" in said[0]


def test_without_released_solutions_one_line_names_the_missing_chapters(releases, tmp_path):
    folder = notebook_folder(tmp_path / "work", releases["none"], filled=("ch01", "ch02", "ch03", "ch06"),
                             blank=("ch04", "ch05"))
    out, problems = run(releases["none"], folder, "ch06")
    said = [ln for ln in out if ln.startswith("ch06:")]
    assert len(said) == 1 and "MISSING" in said[0] and "chapters 4 and 5" in said[0], out
    assert "ch04_multihead.ipynb" in said[0] and "ch05_ffn.ipynb" in said[0]
    assert not any("not implemented yet" in ln or "not written yet" in ln for ln in out if ln not in said), out
    assert problems, "the DecoderBlock checks cannot pass without multi-head attention"
    assert all("NotImplementedError: implement " in p and ("(chapter 4" in p or "(chapter 5" in p)
               for p in problems), problems


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_each_chapter_runs_with_the_chapters_it_needs(releases, tmp_path, chapter):
    folder = notebook_folder(tmp_path / "work", releases["none"], filled=(*NEEDS[chapter], chapter))
    out, problems = run(releases["none"], folder, chapter)
    assert problems == [], problems
    said = [ln for ln in out if ln.startswith(f"{chapter}:")]
    assert len(said) == 1 and "MISSING" not in said[0], out


def test_a_chapter_without_what_it_needs_says_so_once(releases, tmp_path):
    needs = {c: n for c, n in NEEDS.items() if n and c in CHAPTERS}
    chapter = min(needs)  # the first chapter that needs an earlier one
    folder = notebook_folder(tmp_path / "work", releases["none"], filled=(chapter,))
    out, problems = run(releases["none"], folder, chapter)
    said = [ln for ln in out if ln.startswith(f"{chapter}:")]
    assert len(said) == 1 and "MISSING" in said[0] and all(f"{c}_" in said[0] for c in needs[chapter]), out
    assert problems and all("NotImplementedError: implement " in p for p in problems), problems
