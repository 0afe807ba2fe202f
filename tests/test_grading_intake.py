"""Intake: what a student controls (file types, names, zips) never reaches past their own row.

Fast checks of discovery alone (no grading); tests/test_grading_hostile.py grades such a class end to
end. Each attack class has a small generator of cases.
"""
from __future__ import annotations

import csv
import io
import json
import os
import socket
import threading
import time
import unicodedata
import zipfile
from pathlib import Path

import pytest

from tfmcourse.grading.gradebook import csv_cell, feedback_markdown, write_gradebook
from tfmcourse.grading.intake import Intake, Rejected, read_student_file, student_key
from tfmcourse.grading.notebook import py_to_notebook

NB = json.dumps(py_to_notebook("x = 1")).encode()


def _nb(path: Path, text: bytes = NB) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text)
    return path


def _discover(tmp_path: Path, *paths: Path, chapter: str | None = "ch03"):
    private = tmp_path / "private"
    private.mkdir(exist_ok=True, mode=0o700)
    intake = Intake(private)
    subs, ch = intake.discover(list(paths), chapter)
    return {s.student: s for s in subs}, intake


# -- links and special files -------------------------------------------------------------------------------
def _links(root: Path, elsewhere: Path) -> dict[str, str]:
    """Every way a student can put a link where a notebook goes: name -> what the link points at."""
    secret = _nb(elsewhere / "root_only" / "ch03_qkv.ipynb", b'{"cells": "THE SOLUTION"}')
    secret.chmod(0o600)
    cases = {"relative_file_link": "../ada/ch03_qkv.ipynb", "absolute_file_link": str(root / "ada" / "ch03_qkv.ipynb"),
             "root_only_copy": str(secret), "dev_zero": "/dev/zero", "dangling": str(elsewhere / "nothing"),
             "into_a_checkout": str(Path(__file__).resolve().parents[1] / "solutions" / "ch03_qkv.ipynb")}
    for name, target in cases.items():
        (root / name).mkdir()
        os.symlink(target, root / name / "ch03_qkv.ipynb")
    os.symlink("ada", root / "folder_link")  # a whole student folder that is a link
    (root / "nbgrader_link" / "ch03_qkv").mkdir(parents=True)  # nbgrader's submitted/<student>/<assignment>/
    os.symlink(str(root / "ada" / "ch03_qkv.ipynb"), root / "nbgrader_link" / "ch03_qkv" / "ch03_qkv.ipynb")
    return {**cases, "folder_link": "ada", "nbgrader_link": "ada's notebook"}


def test_links_are_rejected_never_followed(tmp_path):
    root = tmp_path / "class"
    _nb(root / "ada" / "ch03_qkv.ipynb")
    cases = _links(root, tmp_path / "elsewhere")
    subs, _ = _discover(tmp_path, root)
    assert not subs["ada"].rejected and subs["ada"].sha256
    for name in cases:
        s = subs[name]
        assert "symbolic link" in s.rejected and not s.copy and not s.sha256, (name, s)
    copies = list((tmp_path / "private").iterdir())
    assert len(copies) == 1 and b"THE SOLUTION" not in copies[0].read_bytes()


def _special_files(root: Path) -> dict[str, str]:
    (root / "a_folder" / "ch03_qkv.ipynb").mkdir(parents=True)
    (root / "a_fifo").mkdir()
    os.mkfifo(root / "a_fifo" / "ch03_qkv.ipynb")
    (root / "a_socket").mkdir()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "a_socket" / "ch03_qkv.ipynb"))
    sock.close()
    (root / "too_big").mkdir()
    with open(root / "too_big" / "ch03_qkv.ipynb", "wb") as f:
        f.truncate(21 * 2**20)
    (root / "flat_folder.ipynb").mkdir()  # one file per student, but a folder
    return {"a_folder": "a folder", "a_fifo": "named pipe", "a_socket": "socket", "too_big": "MiB",
            "flat_folder": "a folder"}


def test_special_files_are_rejected_without_hanging(tmp_path):
    root = tmp_path / "class"
    _nb(root / "ada" / "ch03_qkv.ipynb")
    cases = _special_files(root)
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(subs=_discover(tmp_path, root)[0]), daemon=True)
    worker.start()
    worker.join(30)
    assert "subs" in result, "discovery hung on a special file (a FIFO blocks a plain open())"
    subs = result["subs"]
    assert not subs["ada"].rejected
    for name, why in cases.items():
        assert why in subs[name].rejected, (name, subs[name].rejected)


def test_read_student_file_caps_and_refuses(tmp_path):
    good = _nb(tmp_path / "a.ipynb", b"x" * 100)
    assert read_student_file(good, cap=100) == b"x" * 100
    with pytest.raises(Rejected, match="MiB"):
        read_student_file(good, cap=99)
    os.symlink(good, tmp_path / "link.ipynb")
    with pytest.raises(Rejected, match="symbolic link"):
        read_student_file(tmp_path / "link.ipynb")
    with pytest.raises(Rejected, match="device"):
        read_student_file("/dev/null")


# -- zips ----------------------------------------------------------------------------------------------------
def _zip(path: Path, members: dict[str, bytes], links: dict[str, str] = {}) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
        for name, target in links.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)  # a symbolic link, as zip -y stores it
            z.writestr(info, target)
    return path


def test_zip_members_are_attributed_never_extracted_by_name(tmp_path):
    z = _zip(tmp_path / "download.zip", {
        "ada_1_2_ch03_qkv.ipynb": NB,
        "../../evil_3_4_ch03_qkv.ipynb": NB,  # zip slip: the name is used for attribution only
        "/abs_5_6_ch03_qkv.ipynb": NB,
        "bomb_7_8_ch03_qkv.ipynb": b"\0" * (40 * 2**20),  # compresses to ~40 KB
        "readme.txt": b"not a notebook"}, links={"linker_9_10_ch03_qkv.ipynb": "/etc/shadow"})
    subs, intake = _discover(tmp_path, z)
    # "../.." is dropped from the name, never walked; the member is graded like any other, with a warning
    assert set(subs) == {"ada", "evil", "abs", "bomb", "linker"} and not subs["evil"].rejected
    assert any("'..'" in w and "evil_3_4_ch03_qkv.ipynb" in w for w in intake.warnings), intake.warnings
    assert not subs["ada"].rejected and subs["ada"].lms_id == "1"
    assert "MiB" in subs["bomb"].rejected and "symbolic link" in subs["linker"].rejected
    assert not (tmp_path.parent / "evil_3_4_ch03_qkv.ipynb").exists()
    assert all(p.parent == tmp_path / "private" for p in (tmp_path / "private").iterdir())


# -- names ---------------------------------------------------------------------------------------------------
COLLIDING = [("Zoë", "Zoé"), ("王伟", "李娜"), ("alice smith", "alice_smith"), ("Bob", "bob"),
             ("student", "-student"), ("a/b", "a_b")]


@pytest.mark.parametrize("a,b", COLLIDING)
def test_names_that_an_ascii_filter_would_merge_keep_separate_keys(a, b):
    assert student_key(a) != student_key(b)
    for k in (student_key(a), student_key(b)):
        assert k.isascii() and "/" not in k and not k.startswith(".")


def test_a_name_cannot_take_over_another_students_key():
    victim = student_key("Zoë")
    assert victim != "zoe" and student_key(victim) != victim  # a folder named like the hashed key gets its own
    assert student_key(unicodedata.normalize("NFD", "Zoë")) == victim  # one person, however the OS spells it


def test_unicode_folders_become_separate_students(tmp_path):
    root = tmp_path / "class"
    for a, b in COLLIDING[:3]:
        _nb(root / a / "ch03_qkv.ipynb")
        _nb(root / b / "ch03_qkv.ipynb")
    subs, intake = _discover(tmp_path, root)
    assert set(subs) == {n for pair in COLLIDING[:3] for n in pair} and intake.warnings == []
    assert len({s.key for s in subs.values()}) == 6


def test_two_notebooks_of_one_student_are_reported_not_dropped_silently(tmp_path):
    root = tmp_path / "class"
    _nb(root / "ada" / "ch03_qkv.ipynb")
    _nb(root / "ada" / "old" / "ch03_qkv_v1.ipynb")
    subs, intake = _discover(tmp_path, root)
    assert subs["ada"].path.endswith("ada/ch03_qkv.ipynb")
    assert any("ch03_qkv_v1" in n for n in subs["ada"].notes) and any("ch03_qkv_v1" in w for w in intake.warnings)



def test_a_student_folder_without_the_chapters_notebook_is_a_row_not_dropped(tmp_path):
    root = tmp_path / "class"
    _nb(root / "ada" / "ch03_qkv.ipynb")
    _nb(root / "ken" / "Untitled.ipynb")  # renamed in JupyterLab
    _nb(root / "eve" / "ch04_multihead.ipynb")  # the wrong chapter
    (root / "ivy").mkdir()
    (root / "ivy" / "notes.txt").write_text("no notebook at all")  # not a submission: no row
    subs, _ = _discover(tmp_path, root)
    assert set(subs) == {"ada", "ken", "eve"} and not subs["ada"].rejected
    assert "no ch03_qkv.ipynb in this folder (found Untitled.ipynb)" in subs["ken"].rejected
    assert "(found ch04_multihead.ipynb)" in subs["eve"].rejected and "scores 0" in subs["eve"].rejected

FORMULAS = ["=HYPERLINK(\"http://x\",\"y\")", "+1+1", "-2", "@SUM(A1)", "\tTAB", "\rCR", "two\nlines", "a\u2028b",
            "rtl\u202eevil"]


def test_gradebook_cells_cannot_be_formulas_or_new_rows(tmp_path):
    results = [{"student": n, "chapter": "ch03", "score": 1.0, "max_score": 2.0, "status": "graded", "tests": [],
                "notebook": f"/subs/{n}.ipynb", "key": student_key(n)} for n in FORMULAS]
    write_gradebook(tmp_path / "gb.csv", results)
    text = (tmp_path / "gb.csv").read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(text.splitlines()) == len(FORMULAS) + 1 == len(rows) + 1
    for row in rows:
        for value in row.values():
            assert value[:1] not in "=+-@\t\r" or value == "", value
            assert "\u202e" not in value and "\u2028" not in value
    assert csv_cell("-2") == "'-2" and csv_cell("ada") == "ada"
    fb = feedback_markdown({**results[0], "student": "<script>alert(1)</script>\n# fake heading"})
    assert "<script>" not in fb and "\n# fake heading" not in fb


# -- LMS downloads (issue 13) ---------------------------------------------------------------------------------
def test_canvas_flat_folder_gives_one_row_per_student(tmp_path):
    root = tmp_path / "canvas"
    for name in ("smithjohn_12345_67890_ch03_qkv.ipynb", "doejane_LATE_23456_78901_ch03_qkv-1.ipynb",
                 "leeann_34567_89012_ch03_qkv.ipynb"):
        _nb(root / name)
    subs, _ = _discover(tmp_path, root, chapter=None)
    assert set(subs) == {"smithjohn", "doejane", "leeann"}
    assert subs["doejane"].flags == ("late",) and subs["doejane"].lms_id == "23456"
    assert subs["smithjohn"].flags == () and subs["smithjohn"].lms_id == "12345"


def test_moodle_zip_gives_one_row_per_student(tmp_path):
    z = _zip(tmp_path / "moodle.zip", {
        "Ada Lovelace_101_assignsubmission_file_/ch03_qkv.ipynb": NB,
        "Zoë Müller_102_assignsubmission_file_/ch03_qkv.ipynb": NB,
        "王伟_103_assignsubmission_file_/notes/ch03_qkv.ipynb": NB})
    subs, _ = _discover(tmp_path, z, chapter=None)
    assert set(subs) == {"Ada Lovelace", "Zoë Müller", "王伟"}
    assert subs["王伟"].lms_id == "103"


def test_blackboard_and_moodle_flat_names(tmp_path):
    root = tmp_path / "bb"
    _nb(root / "ch03_qkv_ada01_attempt_2026-11-20-12-00-00_ch03_qkv.ipynb")
    _nb(root / "Bo Li_55_assignsubmission_file_ch03_qkv.ipynb")
    subs, _ = _discover(tmp_path, root)
    assert set(subs) == {"ada01", "Bo Li"}


def test_nbgrader_zip_collect_layout(tmp_path):
    downloaded = tmp_path / "downloaded" / "ch03_qkv"
    (downloaded / "archive").mkdir(parents=True)
    _zip(downloaded / "archive" / "submissions.zip", {
        f"{n}_{i}_{i + 100}_ch03_qkv.ipynb": NB for i, n in enumerate(["ada", "bob", "cy"])})
    subs, _ = _discover(tmp_path, downloaded, chapter=None)
    assert set(subs) == {"ada", "bob", "cy"}
    extracted = downloaded / "extracted"  # after `nbgrader zip_collect` extracted it: that copy wins
    for n in ("ada", "bob", "dee"):
        _nb(extracted / f"{n}_1_2_ch03_qkv.ipynb")
    subs, _ = _discover(tmp_path, downloaded, chapter=None)
    assert set(subs) == {"ada", "bob", "dee"}


def test_discovery_is_quick_for_a_large_class(tmp_path):
    root = tmp_path / "class"
    for i in range(300):
        _nb(root / f"student{i:03d}" / "ch03_qkv.ipynb")
    t0 = time.process_time()
    subs, _ = _discover(tmp_path, root)
    assert len(subs) == 300 and time.process_time() - t0 < 10
