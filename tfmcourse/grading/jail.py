"""Start a sandbox worker: ``python -I .../tfmcourse/grading/jail.py CONFIG_JSON`` (run by the grader).

It is run as a script, not with ``-m``, so that the real ``tfmcourse`` package is never imported into
the worker: the worker imports the stubbed copy only after the file system is set up.

Strongest set-up first (``mode == "namespaces"``), on Linux as root:

1. ``unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID)``, then fork: the worker is pid 1 of a new PID
   namespace (it sees no other process; when it dies the kernel kills everything it started), has a
   network namespace with only a down loopback (no connection anywhere, 127.0.0.1 included) and its
   own mount table, made private first so nothing propagates back to the host.
2. A fresh ``/proc``; ``tmpfs`` over the repository, ``/tmp``, ``/var/tmp``, ``/dev/shm``, ``/root``,
   ``/home`` and the grader's output folders; then only what the worker needs is bound back: the
   Python installation and virtual environment, the scratch folder, and the *stubbed* package copy
   over the package directory (so neither the hidden suites, the solutions, the gradebook nor the
   graded chapter's reference source can be read); the scratch folder is a size-capped tmpfs.
3. Every mount is remounted read-only except the scratch folder.
4. Privileges dropped to a uid/gid of its own (``1000000 + pid``: no other process shares it, so
   ``RLIMIT_NPROC`` and ``kill(-1)`` only reach this worker), ``PR_SET_NO_NEW_PRIVS``, parent-death
   signal, resource limits (CPU seconds, address space, file size, processes, open files, no core),
   ``oom_score_adj`` 1000 (if the machine runs out of memory, the kernel kills workers first).
5. Before all that, where the cgroup file system is writable, the worker moves into a cgroup of its
   own (a child of the grader's) that caps the memory and the tasks of all its processes together.

Without namespaces (not root, or a kernel that refuses) ``mode == "basic"``: the same limits and uid
drop where possible, the stubbed package first on ``sys.path`` and a socket blocker; see SECURITY.md
for what that does not protect.
"""
from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
from pathlib import Path

CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID = 0x00020000, 0x40000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
CGROUP_ROOT = "/sys/fs/cgroup"
NEVER_MASK = {"/", "/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", "/proc", "/sys", "/dev", "/opt", "/var"}

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    if _libc.mount(enc(src), enc(target), enc(fstype), flags, enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {src or ''} -> {target}: {os.strerror(err)}")


def _under(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _mountpoints() -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            out.append(mp.encode().decode("unicode_escape"))  # \040 etc.
    return out


def setup_mounts(cfg: dict, keep_fds: list[tuple[int, str]]) -> None:
    """In a fresh mount + PID namespace (as its pid 1): private mounts, /proc, masks, binds, read-only."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # must succeed before anything else is mounted
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    masks: list[str] = []
    installs = [os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)]
    for m in sorted({os.path.realpath(p) for p in cfg["masks"] if os.path.isdir(p)}, key=len):
        inside_install = any(_under(m, i) and m != i for i in installs)  # e.g. site-packages: keep it
        if m not in NEVER_MASK and not inside_install and not any(_under(m, done) for done in masks):
            masks.append(m)
    for m in masks:
        _mount("tmpfs", m, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
    for fd, target in sorted(keep_fds, key=lambda ft: ft[1].count("/")):
        if any(_under(target, m) for m in masks) or target == cfg["package_dir"]:
            os.makedirs(target, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | MS_REC)
        os.close(fd)
    scratch = cfg["scratch"]
    os.makedirs(scratch, exist_ok=True)  # a size-capped tmpfs of its own: no filling the host's disk
    _mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV,
           f"mode=700,uid={cfg['uid']},gid={cfg['uid']},size={int(cfg['limits']['scratch_mb'])}m,nr_inodes=4096")
    for mp in _mountpoints():
        if mp == scratch:
            continue
        try:
            st = os.statvfs(mp)
            if st.f_flag & os.ST_RDONLY:
                continue
            keep = st.f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC)
            _mount(None, mp, None, MS_REMOUNT | MS_BIND | MS_RDONLY | keep)
        except OSError:
            pass  # checked below for the ones that matter
    for must in ("/", os.path.dirname(scratch) or "/"):
        if not os.statvfs(must).f_flag & os.ST_RDONLY:
            raise OSError(f"could not make {must} read-only")


def cgroup_dirs(pid: int, root: str = CGROUP_ROOT) -> dict[str, str]:
    """Where the worker started as process ``pid`` puts itself: ``{controller: folder}``.

    Each is a child of the cgroup this process is in now (read from ``/proc/self/cgroup``), so the
    worker stays inside whatever limits the grader itself runs under. cgroup v1 has one hierarchy per
    controller (``root/memory``, ``root/pids``); v2 one hierarchy (``root`` or ``root/unified``) for both.
    """
    name = f"tfm-worker-{pid}"
    own: dict[str, str] = {}
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                for c in controllers.split(",") if controllers else ["v2"]:
                    own[c] = path
    except OSError:
        return {}
    out = {}
    for c in ("memory", "pids"):
        if c in own and os.path.isdir(os.path.join(root, c)):
            out[c] = os.path.join(root, c) + own[c].rstrip("/") + "/" + name
    if "v2" in own and len(out) < 2:
        for base in (root, os.path.join(root, "unified")):
            if os.path.exists(os.path.join(base, "cgroup.controllers")):
                out["v2"] = base + own["v2"].rstrip("/") + "/" + name
                break
    return out


def join_cgroups(memory_mb: int, nproc: int, root: str = CGROUP_ROOT) -> dict[str, bool]:
    """Cap the memory and the number of processes of this process and all it starts, together.

    ``RLIMIT_AS`` caps one process; the cgroup caps their sum (forked children included). Needs write
    access to the cgroup file system (root, or a delegated v2 subtree); returns which caps are in place.
    """
    pid, mem = os.getpid(), str(int(memory_mb) * 2**20)
    applied = {"memory": False, "pids": False}

    def enter(folder: str, files: list[tuple[str, str]]) -> bool:
        try:
            os.makedirs(folder, exist_ok=True)
            for fname, value in files:
                with open(os.path.join(folder, fname), "w") as f:
                    f.write(value)
            with open(os.path.join(folder, "cgroup.procs"), "w") as f:
                f.write(str(pid))
            return True
        except OSError:
            try:
                os.rmdir(folder)
            except OSError:
                pass
            return False

    dirs = cgroup_dirs(pid, root)
    if "memory" in dirs:
        swap = "memory.memsw.limit_in_bytes"
        extra = [(swap, mem)] if os.path.exists(os.path.join(os.path.dirname(dirs["memory"]), swap)) else []
        applied["memory"] = enter(dirs["memory"], [("memory.limit_in_bytes", mem), *extra])
    tasks = str(int(nproc) + 2)  # the worker's threads and children, plus pid 1 and its launcher
    if "pids" in dirs:
        applied["pids"] = enter(dirs["pids"], [("pids.max", tasks)])
    if "v2" in dirs:
        parent = os.path.dirname(dirs["v2"])
        want = [c for c in ("memory", "pids") if not applied[c]]
        try:
            with open(os.path.join(parent, "cgroup.subtree_control"), "w") as f:
                f.write(" ".join(f"+{c}" for c in want))
        except OSError:
            pass  # not delegated to us, or the parent holds processes: enter() below then fails
        files = ([("memory.max", mem), ("memory.swap.max", "0")] if "memory" in want else []) + \
                ([("pids.max", tasks)] if "pids" in want else [])
        if enter(dirs["v2"], files):
            applied.update({c: True for c in want})
    return applied


def _traversable_by_others(path: str) -> bool:
    p = Path(path).resolve()
    return all(os.stat(d).st_mode & 0o001 for d in [*reversed(p.parents), p])


def drop_privileges(cfg: dict, uid: int) -> bool:
    """Become ``uid`` (when root and the interpreter stays reachable); returns whether it happened."""
    if os.geteuid() != 0:
        return False
    if cfg.get("mode") == "basic" and not all(_traversable_by_others(p) for p in (sys.base_prefix, sys.prefix)):
        return False  # the interpreter lives in a folder other users cannot enter (e.g. /root)
    if cfg.get("mode") == "basic":
        os.chown(cfg["scratch"], uid, uid)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    return True


def set_limits(lim: dict) -> None:
    def cap(res: int, value: int, hard: int | None = None) -> None:
        resource.setrlimit(res, (value, value if hard is None else hard))
    cap(resource.RLIMIT_CPU, int(lim["cpu_s"]), int(lim["cpu_s"]) + 1)  # SIGXCPU, then SIGKILL
    cap(resource.RLIMIT_AS, int(lim["memory_mb"]) * 2**20)
    cap(resource.RLIMIT_FSIZE, int(lim["output_mb"]) * 2**20)
    cap(resource.RLIMIT_NOFILE, 256)
    cap(resource.RLIMIT_CORE, 0)
    if os.geteuid() != 0:
        cap(resource.RLIMIT_NPROC, int(lim["nproc"]))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the cap fail with EFBIG instead


def block_sockets() -> None:
    """Basic mode only: refuse new sockets in Python (code that reloads ``_socket`` gets around it)."""
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError("network access is disabled while grading")

    class NoSocket(socket.socket):
        def __init__(self, *args: object, **kwargs: object) -> None:
            refuse()

    socket.socket = NoSocket  # type: ignore[misc]
    socket.create_connection = refuse  # type: ignore[assignment]
    socket.socketpair = refuse  # type: ignore[assignment]


def main(argv: list[str]) -> int:
    cfg = json.loads(argv[0])
    if "tfmcourse" in sys.modules:
        raise RuntimeError("jail.py must be run as a script (python -I jail.py), not imported with tfmcourse")
    rfd, wfd = cfg["fds"]
    # If the grader dies, so does this process (and with it, in namespace mode, the worker below it).
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != cfg.get("grader_pid", os.getppid()):  # the grader was already gone
        return 1
    uid = 1_000_000 + os.getpid()
    # Paths bound back after masking, opened now (O_PATH) so they stay reachable under the masks.
    cfg["uid"] = uid
    keeps = [(p, p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}]
    keeps.append((cfg["stub_package"], cfg["package_dir"]))
    try:  # if memory runs out machine-wide, the kernel kills the worker first
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    cgroups = join_cgroups(cfg["limits"]["memory_mb"], cfg["limits"]["nproc"]) if os.geteuid() == 0 else {}
    mode = "basic"
    if cfg.get("namespaces", True) and os.geteuid() == 0 and sys.platform.startswith("linux"):
        if _libc.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID) == 0:
            mode = "namespaces"
    cfg["mode"] = mode
    fatal = ""
    if mode == "namespaces":
        keep_fds = [(os.open(src, os.O_PATH), dst) for src, dst in keeps if os.path.exists(src)]
        pid = os.fork()
        if pid:  # the launcher: wait for the worker and pass on how it ended
            for fd in (rfd, wfd, *(fd for fd, _ in keep_fds)):
                os.close(fd)
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
        try:
            setup_mounts(cfg, keep_fds)
        except OSError as e:  # reported as a grader problem; no notebook code will run
            fatal = f"the sandbox's file system could not be set up ({e})"
    dropped = drop_privileges(cfg, uid)
    _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    set_limits(cfg["limits"])
    os.umask(0o077)
    try:
        os.chdir(cfg["scratch"])
    except OSError as e:
        fatal = fatal or f"the scratch folder is not usable ({e})"
        os.chdir("/")
    for var in ("HOME", "TMPDIR", "MPLCONFIGDIR", "XDG_CACHE_HOME", "TORCHINDUCTOR_CACHE_DIR"):
        os.environ[var] = cfg["scratch"]
    sys.path[:] = [p for p in sys.path if p not in ("", ".", cfg["scratch"])]
    sys.path.insert(0, str(Path(cfg["stub_package"]).parent))
    if mode == "basic":
        block_sockets()
    info = {"mode": mode, "uid": os.getuid() if dropped else None, "dropped_privileges": dropped,
            "cgroups": cgroups}
    if fatal:
        info["fatal"] = fatal
    elif os.geteuid() == 0 and mode == "basic":
        info["fatal"] = ("refusing to run a submission as root without namespaces: the interpreter is in a folder "
                         "other users cannot enter, so privileges cannot be dropped; install Python/the venv "
                         "somewhere world-readable, or allow unshare (CAP_SYS_ADMIN)")
    from tfmcourse.grading.worker import serve
    return serve(rfd, wfd, cfg["chapter"], info)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
