"""Hostile: answers every request in advance (junk) from a thread, then never reads its pipe again,
so the grader's next large request cannot be written. Expect: the write times out (no 12-minute
hang), the run goes on, 0 points."""
# %%
import json
import sys
import threading
import time

import tfmcourse.grading.wire as wire

_, wfd = json.loads(sys.argv[1])["fds"]


def answer_everything_in_advance():
    for i in range(1, 400):
        value = {"problems": [], "kinds": {}} if i == 1 else None
        wire.write_frame(wfd, {"id": i, "ok": True, "value": value})


threading.Thread(target=answer_everything_in_advance, daemon=True).start()
time.sleep(10**6)  # this cell never ends: the worker never reads another request
