"""Submissions in: finding each student's notebook without ever trusting the file system.

Everything a student controls is hostile input: file names, file types and contents. The rules:

* **Nothing is followed.** Folders are walked with ``lstat`` semantics (``os.scandir``, no
  ``follow_symlinks``); a file is opened with ``O_NOFOLLOW | O_NONBLOCK``, checked to be a regular file
  on that same descriptor (``fstat``), and read with a hard byte cap. A link (to a file or a folder),
  a folder, FIFO, socket or device in place of a notebook, or a notebook over the size cap, is that
  student's problem alone: a rejection with a clear reason and 0 points, never a crash, a hang or an
  unbounded read, and the rest of the class is graded. Symlinks inside nbgrader's ``submitted/`` tree
  are refused the same way (nbgrader copies regular files, so a link there came from a submission).
* **Read once.** A notebook's bytes are read once, hashed, and copied into the grader's private folder
  (mode 0700); grading reads that copy, never the student's path again.
* **Zips** (an LMS's "download all submissions") are read member by member: only ``.ipynb``/``.py``
  members are kept, each under the same size cap, a capped number of members and bytes in all; names
  are never used as paths on disk (no "zip slip"), and a link stored in a zip is rejected like one on
  disk.
* **Names.** A student's id is the folder or file name as given (Unicode, NFC), or the name an LMS
  put in it (:mod:`.lms`). Files are keyed by :func:`student_key`, which is unique per name.

Layouts of a folder ``DIR`` (``.ipynb``; ``.py`` with ``# %%`` cells also works):

* ``DIR/<student>.ipynb`` (or ``DIR/<student>_chNN_<slug>.ipynb``)     one file per student;
* ``DIR/<student>/chNN_<slug>.ipynb``                                  one folder per student;
* ``DIR/<student>/<assignment>/chNN_*.ipynb``                          nbgrader's ``submitted/`` layout;
* LMS downloads as a zip or a flat folder (Canvas, Moodle, Blackboard names; see :mod:`.lms`), and
  nbgrader's ``zip_collect`` folder ``downloaded/<assignment>/`` (``archive/`` zips, ``extracted/``).
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from . import interfaces
from .lms import Owner, owner_from_file_name, owner_from_folder_name
from .notebook import MAX_NOTEBOOK_BYTES

__all__ = ["Submission", "Rejected", "read_student_file", "student_key", "Intake", "MAX_NOTEBOOK_BYTES",
           "SUFFIXES"]

SUFFIXES = (".ipynb", ".py")
MAX_ZIP_MEMBERS = 20_000
MAX_ZIP_BYTES = 2 * 2**30  # notebook bytes taken from one zip, in all
MAX_DEPTH = 6  # folder levels walked below a given folder


class Rejected(Exception):
    """A student's file the grader will not read; the message is written for that student."""


@dataclass(frozen=True)
class Submission:
    """One student's notebook for one chapter, as found (``rejected`` says why it cannot be graded)."""

    student: str  # the name as given (NFC): shown in the gradebook
    path: str  # where it was found, for the instructor (zip members: ``archive.zip!member``)
    chapter: str
    key: str = ""  # unique, file-system-safe: results/<key>.json, feedback/<key>.md
    sha256: str = ""  # of the bytes read at intake
    copy: str = ""  # the grader's private copy of those bytes (what is graded)
    rejected: str = ""
    lms_id: str = ""
    flags: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # e.g. other files of this student that were not graded
    files: tuple[tuple[str, str], ...] = ()  # capstone: (chNN_<slug>.ipynb, private copy) of their other notebooks

    def __post_init__(self) -> None:
        if not self.key:
            object.__setattr__(self, "key", student_key(self.student))
        if not self.copy and not self.rejected:  # built by a trusted caller (a test, a script): grade ``path``
            object.__setattr__(self, "copy", self.path)


_SAFE_KEY = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
_HASHED_KEY = re.compile(r"-[0-9a-f]{16}$")


def student_key(name: str) -> str:
    """A file-system-safe id, unique per (NFC-normalised) name.

    A name that is already safe (lower-case ASCII letters, digits, ``._@-``) is its own key; any other
    name gets an ASCII rendering plus 16 hex digits of its SHA-256, so ``Zoë``/``Zoé``, ``王伟``/``李娜``
    and ``alice smith``/``alice_smith`` never share a key, and no safe name can equal a hashed key.
    """
    name = unicodedata.normalize("NFC", name)
    if _SAFE_KEY.match(name) and not _HASHED_KEY.search(name) and name not in (".", ".."):
        return name
    ascii_ = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_.lower()).strip("-")[:40] or "student"
    return f"{slug}-{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"


def _describe(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _refusal(what: str) -> str:
    return f"your submission is {what}, not a notebook file: submit the notebook file itself (not a link, " \
           f"folder or special file); it scores 0"


def read_student_file(path: str | Path, cap: int = MAX_NOTEBOOK_BYTES) -> bytes:
    """The bytes of a regular file at ``path``, never following a link, at most ``cap`` bytes.

    Raises:
        Rejected: a link, folder, FIFO, device, socket, an unreadable file, or one larger than ``cap``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            raise Rejected(f"the file could not be read ({e.strerror or e})") from None
        if stat.S_ISLNK(mode) or not stat.S_ISREG(mode):
            raise Rejected(_refusal(_describe(mode))) from None
        raise Rejected(f"the file could not be read ({e.strerror or e})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Rejected(_refusal(_describe(st.st_mode)))
        if st.st_size > cap:
            raise Rejected(f"the notebook is {st.st_size / 2**20:.1f} MiB; notebooks above {cap // 2**20} MiB are "
                           f"refused (clear the outputs and resubmit); it scores 0")
        chunks, got = [], 0
        while got <= cap:
            chunk = os.read(fd, min(1 << 20, cap + 1 - got))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got > cap:
            raise Rejected(f"the notebook is larger than {cap // 2**20} MiB; it scores 0")
        return b"".join(chunks)
    except OSError as e:
        raise Rejected(f"the file could not be read ({e.strerror or e})") from None
    finally:
        os.close(fd)


@dataclass
class _Found:
    """A candidate file: where it is (``parts`` relative to a given root), and its bytes or why not."""

    origin: str
    parts: tuple[str, ...]
    root_name: str
    data: bytes | None = None
    rejected: str = ""
    owner: Owner | None = None


def _nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s)


def _is_candidate(name: str) -> bool:
    return name.endswith(SUFFIXES)


@dataclass
class Intake:
    """Finds submissions under given paths and keeps private copies of their bytes in ``private_dir``."""

    private_dir: Path
    warnings: list[str] = field(default_factory=list)

    # -- walking ------------------------------------------------------------------------------------------
    def _walk(self, root: Path, root_name: str) -> list[_Found]:
        found: list[_Found] = []

        def visit(folder: Path, parts: tuple[str, ...]) -> None:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as e:
                self.warnings.append(f"{folder}: cannot be listed ({e.strerror or e}); skipped")
                return
            for entry in entries:
                name, rel = _nfc(entry.name), (*parts, _nfc(entry.name))
                if name.startswith(".") or name == "__pycache__":
                    continue
                try:
                    mode = entry.stat(follow_symlinks=False).st_mode
                except OSError:
                    continue
                is_dir = stat.S_ISDIR(mode)
                if is_dir and len(rel) < MAX_DEPTH and not _is_candidate(name):
                    visit(Path(entry.path), rel)
                elif _is_candidate(name) or (stat.S_ISLNK(mode) and len(rel) <= 2):
                    # a notebook-named entry, or a link where a student's folder or file would be
                    f = _Found(str(entry.path), rel, root_name)
                    if stat.S_ISREG(mode):
                        self._read(f, lambda p=entry.path: read_student_file(p))
                    else:
                        f.rejected = _refusal(_describe(mode))
                    found.append(f)
                elif name.lower().endswith(".zip") and stat.S_ISREG(mode):
                    found.extend(self._zip(Path(entry.path), rel, root_name))

        visit(root, ())
        return found

    def _read(self, f: _Found, read) -> None:
        try:
            f.data = read()
        except Rejected as e:
            f.rejected = str(e)

    def _zip(self, path: Path, parts: tuple[str, ...], root_name: str) -> list[_Found]:
        """The notebook members of a zip, read with caps; member names are only used for attribution."""
        found: list[_Found] = []
        try:
            data = read_student_file(path, cap=MAX_ZIP_BYTES)
            zf = zipfile.ZipFile(io.BytesIO(data))
            infos = zf.infolist()
        except (Rejected, zipfile.BadZipFile, OSError, ValueError) as e:
            self.warnings.append(f"{path}: not a readable zip ({e}); skipped")
            return found
        if len(infos) > MAX_ZIP_MEMBERS:
            self.warnings.append(f"{path}: {len(infos)} members, more than {MAX_ZIP_MEMBERS}; only the first are read")
        total = 0
        for info in infos[:MAX_ZIP_MEMBERS]:
            member = info.filename.replace("\\", "/")
            raw = [p for p in member.split("/") if p not in ("", ".")]
            names = tuple(_nfc(p) for p in raw if p != "..")  # only ever used for attribution, never as a path
            if not names or info.is_dir() or any(p.startswith(".") for p in names) or "__MACOSX" in names:
                continue  # folders, hidden files (.ipynb_checkpoints) and macOS metadata
            if not _is_candidate(names[-1]):
                continue
            if ".." in raw:
                self.warnings.append(f"{path}!{member}: a member name with '..' (read from the zip, never "
                                     f"written to disk); attributed as {'/'.join(names)}")
            f = _Found(f"{path}!{member}", (*parts[:-1], *names), root_name)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                f.rejected = _refusal("a symbolic link (stored in the zip)")
            elif info.file_size > MAX_NOTEBOOK_BYTES:
                f.rejected = (f"the notebook is {info.file_size / 2**20:.1f} MiB; notebooks above "
                              f"{MAX_NOTEBOOK_BYTES // 2**20} MiB are refused; it scores 0")
            elif total + info.file_size > MAX_ZIP_BYTES:
                self.warnings.append(f"{path}: more than {MAX_ZIP_BYTES // 2**30} GiB of notebooks; the rest skipped")
                break
            else:
                try:
                    with zf.open(info) as fh:  # read at most the cap, whatever the header claims
                        f.data = fh.read(MAX_NOTEBOOK_BYTES + 1)
                    if len(f.data) > MAX_NOTEBOOK_BYTES:
                        f.data, f.rejected = None, f"the notebook is larger than {MAX_NOTEBOOK_BYTES // 2**20} MiB"
                    else:
                        total += len(f.data)
                except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as e:
                    f.rejected = f"the notebook could not be read from the zip ({e})"
            found.append(f)
        return found

    def _expand(self, p: Path) -> list[_Found]:
        """Candidates under one given path (a notebook, a zip, a folder, nbgrader's zip_collect folder)."""
        if p.is_symlink() and not p.exists():
            raise ValueError(f"{p} is a broken link")
        if not p.exists():
            raise ValueError(f"{p} does not exist")
        name = _nfc(p.resolve().name)
        if p.is_dir():
            extracted, archive = p / "extracted", p / "archive"
            if extracted.is_dir() and any(extracted.iterdir()):  # nbgrader zip_collect: extracted wins
                return self._walk(extracted, name)
            if archive.is_dir() and not (p / "submitted").exists():
                return self._walk(archive, name)
            return self._walk(p, name)
        if name.lower().endswith(".zip"):
            return self._zip(p, (), _nfc(p.resolve().parent.name))
        f = _Found(str(p), (name,), _nfc(p.resolve().parent.name))  # a single file the instructor named
        self._read(f, lambda: read_student_file(p))
        return [f]

    # -- attribution ----------------------------------------------------------------------------------------
    @staticmethod
    def _owner(f: _Found) -> Owner:
        *folders, fname = f.parts
        lms = owner_from_file_name(fname)
        if lms:
            return lms
        for d in folders:
            moodle = owner_from_folder_name(d)
            if moodle:
                return moodle
        if folders:
            return Owner(folders[0])
        stem = fname.rsplit(".", 1)[0]
        m = re.search(r"ch\d\d", stem, re.I)
        if m is None:
            return Owner(stem)
        before = stem[:m.start()].strip(" _-.")
        return Owner(before) if before else Owner(f.root_name)

    def discover(self, paths: list[str | Path], chapter: str | None) -> tuple[list[Submission], str]:
        """Find the submissions of ``chapter`` (read from the file names if ``None``) under ``paths``.

        Returns:
            The submissions (rejected ones included), sorted by student, and the chapter id.

        Raises:
            ValueError: no chapter given and none in the file names, or nothing found.
        """
        found = [f for p in map(Path, paths) for f in self._expand(p)]
        if chapter is None:
            ids = [c.id for f in found if (c := interfaces.chapter_from_filename(f.parts[-1]))]
            if not ids:
                raise ValueError("cannot tell the chapter from the file names; pass --chapter chNN")
            chapter = max(set(ids), key=ids.count)
        ch = interfaces.get_chapter(chapter)
        by_student: dict[str, list[_Found]] = {}
        pieces: dict[str, dict[str, _Found]] = {}  # capstone: each student's notebooks of the other chapters
        strays: dict[str, list[_Found]] = {}  # notebooks in a student's folder that are not this chapter's
        for f in found:
            named = interfaces.chapter_from_filename(f.parts[-1])
            in_folder = len(f.parts) > 1 and owner_from_file_name(f.parts[-1]) is None
            if named is not None and named.id != ch.id:
                if ch.capstone and f.data is not None and not named.capstone:
                    pieces.setdefault(_nfc(self._owner(f).name), {}).setdefault(named.slug, f)
                if in_folder:
                    strays.setdefault(_nfc(self._owner(f).name), []).append(f)
                continue  # another chapter's notebook
            if named is None and in_folder and not f.rejected:
                if f.parts[-1].endswith(".ipynb"):
                    strays.setdefault(_nfc(self._owner(f).name), []).append(f)
                continue  # a notebook under another name, or a helper module, in a student's folder
            f.owner = self._owner(f)
            by_student.setdefault(_nfc(f.owner.name), []).append(f)
        subs = [self._choose(student, files, ch.id, pieces.get(student, {})) for student, files in by_student.items()]
        # A student folder without this chapter's notebook is that student's row (0, and why), never dropped:
        # a renamed notebook (Untitled.ipynb, attention.ipynb) is the commonest careless mistake.
        for student, files in strays.items():
            if student not in by_student:
                owner = self._owner(files[0])
                seen = ", ".join(sorted({f.parts[-1] for f in files})[:5])
                subs.append(Submission(student, files[0].origin, ch.id, lms_id=owner.lms_id, flags=owner.flags,
                                       rejected=f"no {ch.slug}.ipynb in this folder (found {seen}): hand in the "
                                                f"chapter's notebook under its own name; it scores 0"))
        if not subs:
            raise ValueError(f"no {ch.id} notebooks found in {', '.join(map(str, paths))}")
        keys: dict[str, str] = {}
        for s in subs:
            if s.key in keys:  # unreachable short of a 64-bit hash collision: refuse rather than merge
                raise ValueError(f"students {keys[s.key]!r} and {s.student!r} map to the same key {s.key}")
            keys[s.key] = s.student
        return sorted(subs, key=lambda s: s.student), ch.id

    def _copy(self, data: bytes, suffix: str) -> str:
        fd, copy = tempfile.mkstemp(suffix=suffix, dir=self.private_dir)  # mode 0600, a name of our own
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return copy

    def _choose(self, student: str, files: list[_Found], chapter: str, pieces: dict[str, _Found]) -> Submission:
        """One submission per student: a readable file, the course's own name first, else the latest."""
        def rank(f: _Found) -> tuple:
            exact = f.parts[-1] == f"{interfaces.get_chapter(chapter).slug}.ipynb"
            return (f.data is not None, exact, f.parts[-1], f.origin)
        files = sorted(files, key=rank, reverse=True)
        best, others = files[0], files[1:]
        owner = best.owner or Owner(student)
        notes = tuple(f"also found {o.origin} ({o.rejected or 'not graded'})" for o in others)
        for n in notes:
            self.warnings.append(f"{student}: {n}")
        if best.data is None:
            return Submission(student, best.origin, chapter, rejected=best.rejected or "unreadable",
                              lms_id=owner.lms_id, flags=owner.flags, notes=notes)
        copy = self._copy(best.data, ".py" if best.parts[-1].endswith(".py") else ".ipynb")
        extra = tuple((f"{slug}.ipynb", self._copy(p.data, ".ipynb")) for slug, p in sorted(pieces.items()))
        digest = hashlib.sha256(best.data)
        for _, p in sorted(pieces.items()):
            digest.update(hashlib.sha256(p.data).digest())
        return Submission(student, best.origin, chapter, sha256=digest.hexdigest(), copy=copy, lms_id=owner.lms_id,
                          flags=owner.flags, notes=notes, files=extra)
