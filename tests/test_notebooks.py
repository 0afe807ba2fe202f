"""Every solution notebook runs top to bottom (hidden tests included), and the student version is sane."""
import json
import time

import nbformat
import pytest
from nbclient import NotebookClient

from tfmcourse.exercises import REPO_DIR

SOLUTIONS = sorted((REPO_DIR / "solutions").glob("ch*.ipynb"))
EXERCISES = sorted((REPO_DIR / "exercises").glob("ch*.ipynb"))


@pytest.mark.notebooks
@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_solution_notebook_executes(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "store solutions without outputs"
    start = time.perf_counter()
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    elapsed = time.perf_counter() - start
    print(f"{path.name}: {elapsed:.0f} s")


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.stem)
def test_exercise_notebook_has_no_solutions_and_explains_itself(path):
    nb = json.loads(path.read_text())
    text = "\n".join("".join(c["source"]) for c in nb["cells"])
    assert "### BEGIN SOLUTION" not in text and "### BEGIN HIDDEN TESTS" not in text
    assert "nbgrader_check" not in text, "hidden-test calls leaked into the student version"
    first = "".join(nb["cells"][0]["source"])
    assert nb["cells"][0]["cell_type"] == "markdown" and len(first) > 200, "the notebook must open by explaining itself"
    answers = [c for c in nb["cells"] if (c["metadata"].get("nbgrader") or {}).get("solution")]
    assert answers and all("raise NotImplementedError()" in "".join(c["source"]) for c in answers)
