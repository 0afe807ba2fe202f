"""exercises/ is what nbgrader makes of solutions/: regenerate it and compare."""
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tfmcourse.exercises import REPO_DIR, drifted, generate_exercises

SOLUTIONS = sorted((REPO_DIR / "solutions").glob("ch*.ipynb"))


def _grade(cell, **meta):
    cell.metadata["nbgrader"] = {"grade": False, "solution": False, "locked": False, "task": False,
                                 "schema_version": 3, **meta}
    return cell


def test_generate_strips_solutions_and_hidden_tests(tmp_path):
    nb = new_notebook(cells=[
        new_markdown_cell("# demo"),
        _grade(new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION"),
               solution=True, grade_id="f"),
        _grade(new_code_cell("assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(2) == 3\n### END HIDDEN TESTS"),
               grade=True, locked=True, grade_id="test_f", points=2),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (tmp_path / "sol").mkdir()
    nbformat.write(nb, tmp_path / "sol" / "ch99_demo.ipynb")
    (out,) = generate_exercises(tmp_path / "sol", tmp_path / "ex")
    cells = json.loads(out.read_text())["cells"]
    assert "raise NotImplementedError()" in "".join(cells[1]["source"]) and "x + 1" not in "".join(cells[1]["source"])
    assert "".join(cells[2]["source"]).strip() == "assert f(1) == 2"
    assert cells[2]["metadata"]["nbgrader"]["points"] == 2


@pytest.mark.skipif(not SOLUTIONS, reason="no solution notebooks yet")
def test_committed_exercises_match_a_fresh_generation():
    assert drifted() == [], "exercises/ drifted from solutions/: run `make exercises` and commit"
