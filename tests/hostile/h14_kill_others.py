"""Hostile: tries to kill every process it can see (kill(-1), each pid in /proc, its parent), then
implements the masks honestly. Expect: nothing outside its sandbox dies, the masks earn their points."""
# %%
import os
import signal

seen = [int(p) for p in os.listdir("/proc") if p.isdigit()]
for sig in (signal.SIGTERM, signal.SIGKILL):
    for pid in [-1, os.getppid(), *seen]:
        if pid not in (0, os.getpid()):
            try:
                os.kill(pid, sig)
            except OSError:
                pass
