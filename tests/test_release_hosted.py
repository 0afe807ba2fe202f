"""The hosted-notebook path: with ``--package-url`` each released notebook starts with a cell that, on
Google Colab only, installs the course package from that URL; nbgrader still grades such a notebook.

Colab is simulated by a fake ``google.colab`` module on ``PYTHONPATH``; the URL is a local ``file://``
wheel of the release, installed into a fresh venv whose third-party packages are borrowed from this
environment (no download).
"""
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_nbgrader_roundtrip import CONFIG, _nbgrader
from test_release import borrowed_venv

from tfmcourse.exercises import REPO_DIR
from tfmcourse.release import build_release
from tfmcourse.release_notebooks import BOOTSTRAP_ID, fill_answers, read_notebook, write_notebook

pytestmark = pytest.mark.skipif(not any((REPO_DIR / "exercises").glob("ch*.ipynb")),
                                reason="exercises/ not generated yet")


def _bootstrap(nb: dict) -> str:
    first = next(c for c in nb["cells"] if c["cell_type"] == "code")
    assert first["id"] == BOOTSTRAP_ID and "nbgrader" not in first["metadata"]
    return "".join(first["source"])


def test_bootstrap_installs_the_course_package_on_colab_only(tmp_path):
    wheels = tmp_path / "wheels"
    # the package URL is fixed before the wheel exists: the notebooks are not part of the wheel
    url = (wheels / "tfmcourse-0.1.0-py3-none-any.whl").as_uri()
    rel = build_release(tmp_path / "course", book_html=None, package_url=url).path
    notebooks = sorted((rel / "exercises").glob("ch*.ipynb"))
    cells = {_bootstrap(read_notebook(p)) for p in notebooks}
    assert len(cells) == 1 and url in next(iter(cells))  # every notebook, the same cell
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(wheels), str(rel)], check=True, env={**os.environ, "PIP_NO_INDEX": "1"})
    assert Path(url.removeprefix("file://")).is_file()

    py = borrowed_venv(tmp_path / "venv")
    fake = tmp_path / "fake_colab"
    (fake / "google" / "colab").mkdir(parents=True)
    (fake / "google" / "colab" / "__init__.py").write_text("")
    cell = next(iter(cells))
    check = cell + "\nimport tfmcourse; print(tfmcourse.__file__)\n"
    env = {**os.environ, "PIP_NO_INDEX": "1"}
    env.pop("PYTHONPATH", None)
    here = subprocess.run([str(py), "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert here.returncode != 0 and "No module named 'tfmcourse'" in here.stderr  # not Colab: nothing installed
    colab = subprocess.run([str(py), "-c", check], cwd=tmp_path, env={**env, "PYTHONPATH": str(fake)},
                           capture_output=True, text=True, timeout=600)
    assert colab.returncode == 0, colab.stderr[-3000:]
    installed = Path(colab.stdout.strip().splitlines()[-1])
    assert installed.is_relative_to(tmp_path / "venv") and (installed.parent / "_release.py").is_file()
    shutil.rmtree(wheels)  # a second run of the cell in the same session must not install again
    again = subprocess.run([str(py), "-c", check], cwd=tmp_path, env={**env, "PYTHONPATH": str(fake)},
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]


def test_nbgrader_grades_a_released_notebook_with_the_bootstrap_cell(tmp_path):
    slug = "ch03_qkv"
    rel = build_release(tmp_path / "course", book_html=None, package_url="https://example.org/tfmcourse.whl").path
    solution = REPO_DIR / "solutions" / f"{slug}.ipynb"
    root = tmp_path / "nbgrader"
    (root / "source" / slug).mkdir(parents=True)
    (root / "nbgrader_config.py").write_text(CONFIG.format(root=root))
    shutil.copy2(solution, root / "source" / slug / solution.name)

    def nbgrader(*args):
        r = _nbgrader(root, *args)
        assert r.returncode == 0, r.stderr[-3000:]

    nbgrader("generate_assignment", slug, "--force")
    released = read_notebook(rel / "exercises" / solution.name)
    for student, nb in (("alice", fill_answers(released, read_notebook(solution))), ("bob", released)):
        dest = root / "submitted" / student / slug
        dest.mkdir(parents=True)
        write_notebook(nb, dest / solution.name)
    nbgrader("autograde", slug, "--force")
    nbgrader("export")
    grades = {r["student_id"]: r for r in csv.DictReader((root / "grades.csv").open())}
    assert float(grades["alice"]["max_score"]) > 0
    assert float(grades["alice"]["raw_score"]) == float(grades["alice"]["max_score"])
    assert float(grades["bob"]["raw_score"]) == 0.0
    graded = json.loads((root / "autograded" / "alice" / slug / solution.name).read_text())
    assert graded["cells"][1]["id"] == BOOTSTRAP_ID  # kept, run, and not counted
