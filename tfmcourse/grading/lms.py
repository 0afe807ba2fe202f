"""Who submitted a file, read from the names learning-management systems give their downloads.

An instructor downloads a class's submissions as one zip (or one flat folder) with a file per student;
the student is in the file's (or its folder's) name. Recognised, in this order:

==============  ===========================================================  ============================
system          name                                                         student, id, flags
==============  ===========================================================  ============================
Canvas          ``smithjohn_12345_67890_ch03_qkv.ipynb``                     ``smithjohn``, ``12345``
                ``smithjohn_LATE_12345_67890_ch03_qkv-1.ipynb`` (late,       ``smithjohn``, ``12345``,
                resubmitted)                                                 ``late``
Moodle          ``Full Name_12345_assignsubmission_file_/ch03_qkv.ipynb``    ``Full Name``, ``12345``
                (a folder per student) or ``..._assignsubmission_file_``
                as a prefix of the file name
Blackboard      ``ch03_alice01_attempt_2026-11-20-12-00-00_ch03_qkv.ipynb``  ``alice01``
==============  ===========================================================  ============================

Anything else keeps the course's own layouts (``DIR/<student>.ipynb``, ``DIR/<student>/chNN_*.ipynb``,
nbgrader's ``submitted/<student>/<assignment>/``); see :mod:`.intake`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Owner", "owner_from_file_name", "owner_from_folder_name"]


@dataclass(frozen=True)
class Owner:
    """A student named by an LMS: display ``name``, the LMS's own ``lms_id`` (may be empty), ``flags``."""

    name: str
    lms_id: str = ""
    system: str = ""
    flags: tuple[str, ...] = ()


_CANVAS = re.compile(r"^(?P<name>[^_/]+)_(?P<late>LATE_)?(?P<uid>\d+)_(?P<sub>\d+)_(?P<file>.+)$")
_MOODLE = re.compile(r"^(?P<name>.+?)_(?P<uid>\d+)_assignsubmission_(?:file|onlinetext)_(?P<file>.*)$")
_BLACKBOARD = re.compile(r"^(?P<assignment>.+?)_(?P<name>[^_/]+)_attempt_"
                         r"(?P<when>\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)_?(?P<file>.*)$")


def owner_from_folder_name(name: str) -> Owner | None:
    """The student of a Moodle per-student folder (``Full Name_12345_assignsubmission_file_``)."""
    m = _MOODLE.match(name)
    if m and not m["file"]:
        return Owner(m["name"].strip(), m["uid"], "moodle")
    return None


def owner_from_file_name(name: str) -> Owner | None:
    """The student named by an LMS download's file name, or ``None`` for a plain course file name."""
    m = _MOODLE.match(name)
    if m and m["file"]:
        return Owner(m["name"].strip(), m["uid"], "moodle")
    m = _BLACKBOARD.match(name)
    if m:
        return Owner(m["name"], "", "blackboard")
    m = _CANVAS.match(name)
    if m:
        return Owner(m["name"], m["uid"], "canvas", ("late",) if m["late"] else ())
    return None
