"""Hostile submissions get only what they honestly earned, and cannot disturb anyone else's grade.

One ``tfmcourse grade`` run (2 jobs, small limits) grades every tests/hostile/h*.py (as notebooks)
together with an honest submission. The honest grade must equal the honest submission graded alone,
in-process; each hostile one must score what its honest parts are worth (usually 0) with a reason in
its feedback; nothing outside the sandbox may be read, written, connected to or killed.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import socket
import threading
from pathlib import Path

import pytest

from tfmcourse.grading import cli
from tfmcourse.grading.impl import LocalImpl
from tfmcourse.grading.notebook import exec_cells, read_cells
from tfmcourse.grading.runner import run_suite
from tfmcourse.grading.sandbox import REPO_DIR, Limits, SandboxImpl
from tfmcourse.grading.testing import once_per_run, reference_source, write_notebook

HOSTILE = Path(__file__).parent / "hostile"
HONEST_PARTS = (HOSTILE / "_honest_masks.py").read_text()
# submission -> (earns the honest masks' points?, text expected in its problems or reasons)
EXPECT = {
    "h01_loop_at_import": (True, "was skipped: loading the notebook took longer than the time limit"),
    "h02_loop_in_function": (True, "took longer than the time limit"),
    "h03_memory_bomb": (True, "MemoryError"),
    "h04_fork_bomb": (True, "BlockingIOError"),
    "h05_sys_exit": (True, "raised SystemExit"),
    "h06_os_exit": (True, "was skipped: the process running the notebook exited with status 0"),
    "h07_fake_output": (False, ""),
    "h08_monkeypatch": (False, ""),
    "h09_read_secrets": (False, "LEAKS []"),
    "h10_write_outside": (False, "WROTE []"),
    "h11_network": (False, "NET blocked"),
    "h12_huge_output": (True, "File too large"),
    "h13_import_reference": (False, "disabled while its chapter is graded"),
    "h14_kill_others": (True, ""),
}
NEEDS_UID_DROP = {"h04_fork_bomb", "h14_kill_others"}  # unsafe unless the worker runs as its own uid
OUTSIDE = [Path("/tmp/tfm_pwned.txt"), Path("/var/tmp/tfm_pwned.txt"), Path("/dev/shm/tfm_pwned.txt"),
           REPO_DIR / "pwned.txt", REPO_DIR / "tests" / "hidden" / "test_ch03_pwned.py"]


def _sandbox_info() -> dict:
    probe = Path(__file__).parent / "hostile" / "_honest_masks.py"
    impl = SandboxImpl(probe, "ch03", Limits(timeout_s=30))
    try:
        impl.call("causal_mask", 2)
        return impl.report()["sandbox"]
    finally:
        impl.close()


def _grade_hostile(root: Path) -> dict:
    """Grade all hostile submissions with an honest one in one run; return what the tests check (JSON)."""
    info = _sandbox_info()
    if not info.get("dropped_privileges") and info.get("mode") == "basic":
        return {"skip": f"the sandbox cannot drop privileges here ({info}); hostile submissions would run unconfined"}
    subs, gradebook, results = root / "subs", root / "gradebook.csv", root / "results_ch03"
    results.mkdir(mode=0o700)
    (results / "zz_previous.json").write_text(json.dumps({"student": "zz_previous", "chapter": "ch03", "score": 1.0,
        "max_score": 1.0, "status": "graded", "tests": [], "notebook": "-", "problems": []}))
    gradebook.write_text("student,score\nzz_previous,1\n")
    gradebook.chmod(0o600)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.settimeout(0.2)
    accepted, stop = [], threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                pass
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    fill = {"__REPO__": str(REPO_DIR), "__GRADEBOOK__": str(gradebook), "__RESULTS__": str(results),
            "__SUBS__": str(subs), "__PORT__": str(listener.getsockname()[1])}
    names = [n for n in EXPECT if n not in NEEDS_UID_DROP or info.get("dropped_privileges")]
    for name in names:
        src = (HOSTILE / f"{name}.py").read_text()
        for k, v in fill.items():
            src = src.replace(k, v)
        write_notebook(subs / f"{name}.ipynb", src + ("\n# %%\n" + HONEST_PARTS if EXPECT[name][0] else ""))
    write_notebook(subs / "honest.ipynb", reference_source("ch03"))
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in subs.glob("*.ipynb")}
    code = cli.main([str(subs), "--chapter", "ch03", "--jobs", "2", "--out", str(gradebook), "--timeout", "3",
                     "--cpu", "20", "--memory", "1200", "-q"])
    stop.set()
    thread.join()
    listener.close()
    for conn in accepted:
        conn.close()
    mod, _ = exec_cells(read_cells(subs / "honest.ipynb"), {})
    leftovers = [str(p) for p in OUTSIDE if p.exists() and "pwned" in p.read_text()]
    for p in map(Path, leftovers):
        p.unlink()
    return {"code": code, "names": names, "info": info, "accepted": len(accepted),
            "graded": {p.stem: json.loads(p.read_text()) for p in results.glob("*.json")},
            "gradebook": gradebook.read_text(), "alone": run_suite("ch03", lambda ch: LocalImpl(mod.__dict__, ch)),
            "feedback": {p.stem: p.read_text() for p in (root / "feedback_ch03").glob("*.md")},
            "changed": [str(p) for p in before if hashlib.sha256(p.read_bytes()).hexdigest() != before[p]],
            "touched": [str(p) for p in REPO_DIR.glob("tfmcourse/**/*.py") if "# pwned" in p.read_text()],
            "leftovers": leftovers}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    result = once_per_run(tmp_path_factory, "grading-hostile", _grade_hostile)
    if "skip" in result:
        pytest.skip(result["skip"])
    return result


def _text(r: dict) -> str:
    return "\n".join([*r.get("problems", []), *(t["reason"] for t in r["tests"])])


def test_grading_run_completes_and_gradebook_lists_everyone(run):
    assert run["code"] == 0
    rows = {r["student"]: r for r in csv.DictReader(io.StringIO(run["gradebook"]))}
    assert set(run["names"]) | {"honest"} == set(rows)  # a result of an earlier class in the folder is not listed
    assert all(run["graded"][n]["status"] == "graded" for n in run["names"])


def test_honest_student_is_unaffected(run):
    r, alone = run["graded"]["honest"], run["alone"]
    assert r["score"] == r["max_score"] == alone["score"] == alone["max_score"], _text(r)
    assert [(t["id"], t["outcome"]) for t in r["tests"]] == [(t["id"], t["outcome"]) for t in alone["tests"]]
    assert r["problems"] == []


@pytest.mark.parametrize("name", list(EXPECT))
def test_hostile_submission_earns_only_its_honest_part(run, name):
    if name not in run["names"]:
        pytest.skip("needs a worker that runs as its own uid")
    r = run["graded"][name]
    masks = sum(t["max_points"] for t in r["tests"] if t["id"].startswith(("test_causal_mask", "test_padding_mask")))
    honest, marker = EXPECT[name]
    assert r["score"] == (masks if honest else 0), f"{name}: {r['score']}/{r['max_score']}\n{_text(r)}"
    if marker:
        if run["info"].get("mode") == "basic" and name in ("h09_read_secrets", "h10_write_outside"):
            pytest.skip("without namespaces readable/writable world paths are not hidden (see SECURITY.md)")
        assert marker in _text(r), f"{name}: expected {marker!r} in\n{_text(r)}"
    feedback = run["feedback"][name]
    assert f"**Score: {r['score']:g} / {r['max_score']:g} points**" in feedback


def test_nothing_outside_the_sandbox_changed(run):
    assert run["changed"] == [], f"files changed by a submission: {run['changed']}"
    assert run["touched"] == [], f"package files written by a submission: {run['touched']}"
    assert run["leftovers"] == [], f"a submission wrote outside its scratch folder: {run['leftovers']}"
    assert "pwned" not in run["gradebook"]
    assert run["graded"]["h10_write_outside"]["student"] == "h10_write_outside"


def test_no_network_connection_was_made(run):
    assert run["accepted"] == 0, "a submission connected to 127.0.0.1"
