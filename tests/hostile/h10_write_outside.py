"""Hostile: tries to write into the repository, the hidden suite, the gradebook, the result files,
other notebooks and shared temp folders. Reports what it could write ("WROTE [...]"). Expect:
nothing written, 0 points."""
# %%
import glob
import os

REPO, GRADEBOOK, RESULTS, SUBS = "__REPO__", "__GRADEBOOK__", "__RESULTS__", "__SUBS__"
targets = [f"{REPO}/tfmcourse/attention.py", f"{REPO}/tests/hidden/test_ch03_pwned.py", f"{REPO}/pwned.txt",
           GRADEBOOK, f"{RESULTS}/h10_write_outside.json", f"{RESULTS}/pwned.json", f"{SUBS}/pwned.ipynb",
           "/tmp/tfm_pwned.txt", "/var/tmp/tfm_pwned.txt", "/dev/shm/tfm_pwned.txt"]
targets += glob.glob(f"{SUBS}/*.ipynb")
wrote = []
for path in targets:
    try:
        with open(path, "a") as f:
            f.write("\n# pwned\n")
        wrote.append(path)
    except OSError:
        pass
raise RuntimeError(f"WROTE {wrote}")
