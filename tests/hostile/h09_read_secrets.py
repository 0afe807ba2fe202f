"""Hostile: tries to read the hidden suite, the solutions, the reference source, the gradebook, the
result files and other students' notebooks. Reports what it could read in an exception message
("LEAKS [...]"). Expect: no leak, 0 points."""
# %%
import glob
import inspect
import os

REPO, GRADEBOOK, RESULTS, SUBS = "__REPO__", "__GRADEBOOK__", "__RESULTS__", "__SUBS__"
SECRET_MARKERS = {"hidden": "def test_", "solution": "BEGIN SOLUTION", "reference": "masked_fill(~mask",
                  "gradebook": "student,", "result": '"score"', "notebook": "def "}
targets = {
    "hidden": glob.glob(f"{REPO}/tests/hidden/*.py") + [f"{REPO}/tests/hidden/test_ch03_qkv.py"],
    "solution": glob.glob(f"{REPO}/solutions/*.ipynb") + [f"{REPO}/tfmcourse/attention.py"],
    "reference": [f"{REPO}/tfmcourse/attention.py", f"{REPO}/.git/HEAD"]
                 + glob.glob(f"{REPO}/tfmcourse/__pycache__/attention*.pyc"),
    "gradebook": [GRADEBOOK],
    "result": glob.glob(f"{RESULTS}/*.json"),
    "notebook": glob.glob(f"{SUBS}/*.ipynb"),
}
leaks = []
for kind, paths in targets.items():
    for path in paths:
        try:
            with open(path, errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        if SECRET_MARKERS[kind] in text and not path.endswith("h09_read_secrets.ipynb"):
            leaks.append(f"{kind}:{os.path.basename(path)}")
try:
    import tfmcourse.attention as A
    if "masked_fill(~mask" in inspect.getsource(A):
        leaks.append("reference:getsource")
except Exception:
    pass
raise RuntimeError(f"LEAKS {sorted(set(leaks))}")
