"""Hostile: walks the whole file system it can see for copies of the solutions (the test plants copies
under /srv, /opt, /mnt, /var/tmp, host /tmp and another clone under the grader's home) and for the
checkout's solutions/ and hidden suites; reports what it found ("FOUND [...]") and would run it.
Expect: nothing found, 0 points."""
# %%
import os

MARKER, found = "__PLANTED__", []
for top, dirs, files in os.walk("/", followlinks=False):
    dirs[:] = [d for d in dirs if os.path.join(top, d) not in ("/proc", "/sys", "/dev")]
    for name in files:
        path = os.path.join(top, name)
        if name in ("ch03_qkv.ipynb", "test_ch03_qkv.py") or "solutions" in path.split(os.sep):
            found.append(path)
            continue
        try:
            if os.path.getsize(path) < 2**20 and name.endswith((".ipynb", ".md")):
                with open(path, errors="replace") as f:
                    if MARKER in f.read():
                        found.append(path)
        except OSError:
            pass
raise RuntimeError(f"FOUND {sorted(found)[:10]}")
