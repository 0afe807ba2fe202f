"""Hostile submissions get only what they honestly earned, and cannot disturb anyone else's grade.

One ``tfmcourse grade`` run (2 jobs, small limits) grades a class that mixes every attack with honest
students: every tests/hostile/h*.py (as notebooks), links, folders, FIFOs, devices and oversized files
in place of notebooks, Unicode names that an ASCII filter would merge, while copies of the solutions are
planted at host paths outside the checkout. The honest grades must equal the honest notebooks graded
alone, in-process; each hostile one must score what its honest parts are worth (usually 0) with a
reason in its feedback; nothing outside the sandbox may be read, written, connected to or killed; the
run completes and writes the gradebook.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import socket
import stat
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from tfmcourse.grading import cli
from tfmcourse.grading.impl import LocalImpl
from tfmcourse.grading.notebook import exec_cells, read_cells
from tfmcourse.grading.runner import run_suite
from tfmcourse.grading.sandbox import REPO_DIR, Limits, SandboxImpl
from tfmcourse.grading.testing import blank_source, once_per_run, reference_source, write_notebook

pytestmark = pytest.mark.xdist_group("hostile")  # one shared grading run: its tests on one worker
HOSTILE = Path(__file__).parent / "hostile"
HONEST_PARTS = (HOSTILE / "_honest_masks.py").read_text()
BUDGET_S = 30  # the run's per-submission budget (--budget)
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
    "h15_search_filesystem": (False, "FOUND []"),
    "h16_forged_replies": (False, "garbage instead of a reply"),
    "h17_stops_reading": (False, "stopped reading its requests"),
    "h18_every_cell_hangs": (False, "time budget"),
    "h19_huge_reply": (True, "could not be sent back"),
}
NEEDS_UID_DROP = {"h04_fork_bomb", "h14_kill_others"}  # unsafe unless the worker runs as its own uid
OUTSIDE = [Path("/tmp/tfm_pwned.txt"), Path("/var/tmp/tfm_pwned.txt"), Path("/dev/shm/tfm_pwned.txt"),
           REPO_DIR / "pwned.txt", REPO_DIR / "tests" / "hidden" / "test_ch03_pwned.py"]
# Not notebooks: each is that student's rejection (0 points, a reason), never the class's problem.
REJECTED = {"link_to_classmate": "symbolic link", "link_to_solution": "symbolic link",
            "link_to_root_only_copy": "symbolic link", "link_to_dev_zero": "symbolic link",
            "folder_link": "symbolic link", "a_folder": "a folder", "a_fifo": "named pipe", "too_big": "MiB"}
HONEST = {"honest": "reference", "classmate": "reference", "Zoë": "blank", "Zoé": "blank"}


def _plant_solutions(marker: str) -> list[Path]:
    """Readable copies of the solution notebooks at host paths outside the checkout (where writable)."""
    planted = []
    for base in ("/srv", "/opt", "/mnt", "/media", "/var/tmp", tempfile.gettempdir(), os.path.expanduser("~")):
        folder = Path(base) / f"tfm-planted-{marker}" / "clone" / "solutions"
        try:
            folder.mkdir(parents=True)
        except OSError:
            continue
        for nb in (REPO_DIR / "solutions").glob("ch0*.ipynb"):
            (folder / nb.name).write_text(nb.read_text() + f"\n{{\"planted\": \"{marker}\"}}")
        (folder.parent / "marker.md").write_text(marker)
        planted.append(folder.parent.parent)
    return planted


def _sandbox_info() -> dict:
    probe = Path(__file__).parent / "hostile" / "_honest_masks.py"
    impl = SandboxImpl(probe, "ch03", Limits(timeout_s=30))
    try:
        impl.call("causal_mask", 2)
        return impl.report()["sandbox"]
    finally:
        impl.close()


def _class_folder(subs: Path, root: Path) -> None:
    """The non-notebook submissions and the honest students of the class."""
    for name, kind in HONEST.items():
        source = reference_source("ch03") if kind == "reference" else blank_source("ch03")
        if name == "classmate":
            write_notebook(subs / name / "ch03_qkv.ipynb", source)  # a student folder
        else:
            write_notebook(subs / f"{name}.ipynb", source)
    os.symlink("honest.ipynb", subs / "link_to_classmate.ipynb")
    os.symlink(REPO_DIR / "solutions" / "ch03_qkv.ipynb", subs / "link_to_solution.ipynb")
    secret = root / "root_only" / "ch03_qkv.ipynb"
    write_notebook(secret, reference_source("ch03"))
    secret.chmod(0o600)
    secret.parent.chmod(0o700)
    os.symlink(secret, subs / "link_to_root_only_copy.ipynb")
    os.symlink("/dev/zero", subs / "link_to_dev_zero.ipynb")
    os.symlink("classmate", subs / "folder_link")
    (subs / "a_folder.ipynb").mkdir()
    os.mkfifo(subs / "a_fifo.ipynb")
    with open(subs / "too_big.ipynb", "wb") as f:
        f.truncate(30 * 2**20)  # sparse: 30 MiB of nothing


def _grade_hostile(root: Path) -> dict:
    """Grade the mixed class in one run; return what the tests check (JSON)."""
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
    marker = f"TFM-PLANTED-{uuid.uuid4().hex}"
    planted = _plant_solutions(marker)
    fill = {"__REPO__": str(REPO_DIR), "__GRADEBOOK__": str(gradebook), "__RESULTS__": str(results),
            "__SUBS__": str(subs), "__PORT__": str(listener.getsockname()[1]), "__PLANTED__": marker}
    names = [n for n in EXPECT if n not in NEEDS_UID_DROP or info.get("dropped_privileges")]
    for name in names:
        src = (HOSTILE / f"{name}.py").read_text()
        for k, v in fill.items():
            src = src.replace(k, v)
        write_notebook(subs / f"{name}.ipynb", src + ("\n# %%\n" + HONEST_PARTS if EXPECT[name][0] else ""))
    _class_folder(subs, root)
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in subs.rglob("*.ipynb")
              if p.is_file() and not p.is_symlink() and p.stat().st_size < 2**20}
    t0 = time.monotonic()
    try:
        code = cli.main([str(subs), "--chapter", "ch03", "--jobs", "2", "--out", str(gradebook), "--timeout", "6",
                         "--budget", str(BUDGET_S), "--cpu", "20", "--memory", "1200", "-q"])
    finally:
        for p in planted:
            shutil.rmtree(p, ignore_errors=True)
    seconds = time.monotonic() - t0
    stop.set()
    thread.join()
    listener.close()
    for conn in accepted:
        conn.close()
    alone = {}
    for name, kind in HONEST.items():
        path = subs / name / "ch03_qkv.ipynb" if name == "classmate" else subs / f"{name}.ipynb"
        mod, _ = exec_cells(read_cells(path), {})
        alone[name] = run_suite("ch03", lambda ch: LocalImpl(mod.__dict__, ch))
    leftovers = [str(p) for p in OUTSIDE if p.exists() and "pwned" in p.read_text()]
    for p in map(Path, leftovers):
        p.unlink()
    graded = {r["student"]: r for p in results.glob("*.json") if (r := json.loads(p.read_text()))}
    return {"code": code, "names": names, "info": info, "accepted": len(accepted), "seconds": seconds,
            "graded": graded, "gradebook": gradebook.read_text(), "alone": alone,
            "feedback": {r["student"]: (root / "feedback_ch03" / f"{r['key']}.md").read_text()
                         for r in graded.values() if "key" in r},
            "changed": [str(p) for p in before if hashlib.sha256(p.read_bytes()).hexdigest() != before[p]],
            "touched": [str(p) for p in REPO_DIR.glob("tfmcourse/**/*.py") if "# pwned" in p.read_text()],
            "leftovers": leftovers, "modes": {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode)
                                             for p in (gradebook, results, root / "feedback_ch03",
                                                       *(p for p in results.glob("*.json") if p.stem != "zz_previous"))},
            "grader_files": [str(p) for p in Path(tempfile.gettempdir()).glob("tfm-*")
                             if f"-{os.getpid()}-" in p.name]}


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
    rows = list(csv.DictReader(io.StringIO(run["gradebook"])))
    # every submission has its own row (a result of an earlier class in the folder is not listed)
    assert sorted(r["student"] for r in rows) == sorted({*run["names"], *HONEST, *REJECTED})
    assert len(run["gradebook"].splitlines()) == len(rows) + 1  # no name forged a line of its own
    assert all(run["graded"][n]["status"] == "graded" for n in run["names"])


@pytest.mark.parametrize("name", list(HONEST))
def test_honest_students_are_graded_as_when_graded_alone(run, name):
    r, alone = run["graded"][name], run["alone"][name]
    assert r["status"] == "graded" and r["score"] == alone["score"] and r["max_score"] == alone["max_score"], _text(r)
    assert [(t["id"], t["outcome"]) for t in r["tests"]] == [(t["id"], t["outcome"]) for t in alone["tests"]]
    assert r["problems"] == []
    assert r["score"] == (r["max_score"] if HONEST[name] == "reference" else 0)


@pytest.mark.parametrize("name", list(REJECTED))
def test_non_notebooks_are_rejected_for_that_student_only(run, name):
    r = run["graded"][name]
    assert r["status"] == "rejected" and r["score"] == 0 and r["max_score"] > 0, _text(r)
    assert REJECTED[name] in r["rejected"] and REJECTED[name] in run["feedback"][name]
    assert "Your submission could not be graded" in run["feedback"][name]


def test_unicode_names_keep_their_own_rows(run):
    zoe = [run["graded"][n] for n in ("Zoë", "Zoé")]
    assert zoe[0]["key"] != zoe[1]["key"] and all(r["status"] == "graded" for r in zoe)


def test_a_hanging_notebook_frees_its_slot_within_its_budget(run):
    r = run["graded"]["h18_every_cell_hangs"]
    startups = 10.0 * (1 + r["problems"].__len__())  # each restart imports torch again (not the student's time)
    assert r["seconds"] < BUDGET_S + startups + 30, r


def test_grader_files_are_private_and_removed(run):
    assert run["grader_files"] == [], f"left behind: {run['grader_files']}"
    assert all(mode & 0o077 == 0 for mode in run["modes"].values()), run["modes"]


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
