"""`tfmcourse release`: what a student gets, installed the way its README says, runs every notebook.

Two installs of the same release:

* a quick one (third-party packages borrowed from this environment, no download): the stubs raise,
  everything else works, and the command line offers only student commands;
* the student path (marked ``notebooks``): the README's install block, run line by line by bash in the
  release folder (a fresh venv, PyTorch, then ``pip install ".[student]"`` from the package index),
  then every exercise notebook, filled with the solutions, executed by a Jupyter kernel of that venv.
  pip's cache makes repeated runs fast.
"""
import json
import os
import re
import subprocess
import sys
import sysconfig
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from tfmcourse.exercises import REPO_DIR
from tfmcourse.release import build_release
from tfmcourse.release_notebooks import fill_answers, read_notebook, write_notebook

pytestmark = pytest.mark.skipif(not any((REPO_DIR / "exercises").glob("ch*.ipynb")),
                                reason="exercises/ not generated yet")
BOOK_URL = "https://course.example.org/tfmcourse/"

CHECK = textwrap.dedent('''
    import matplotlib
    matplotlib.use("Agg")
    from pathlib import Path
    import sys, torch
    import tfmcourse
    assert Path(tfmcourse.__file__).resolve().is_relative_to(Path(sys.argv[1]).resolve()), tfmcourse.__file__
    from tfmcourse.attention import scaled_dot_product_attention
    from tfmcourse import LayerNorm, MultiHeadAttention, ViT, ViTConfig
    x = torch.ones(1, 2, 2)
    for make in (lambda: scaled_dot_product_attention(x, x, x), lambda: LayerNorm(4), lambda: MultiHeadAttention(8, 2),
                 lambda: ViT(ViTConfig(image_size=8, patch_size=4, in_chans=1, n_classes=3, d_model=8, n_layers=1,
                                       n_heads=2))):
        try:
            make()
        except NotImplementedError as e:
            assert "implement " in str(e) and "chapter" in str(e) and sys.argv[2] in str(e), str(e)
        else:
            raise AssertionError("a stub did not raise")
    # what is not an exercise still works: data, tokenizer, metrics, the training loop, plots
    from tfmcourse.data import load_digits_split, stdlib_corpus
    from tfmcourse.tokenizer import CharTokenizer
    from tfmcourse.metrics import accuracy
    x_tr, y_tr, x_te, y_te = load_digits_split()
    tok = CharTokenizer.from_text(stdlib_corpus(max_chars=10_000))
    assert tok.decode(tok.encode("def f():")) == "def f():"
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(50):
        loss = torch.nn.functional.cross_entropy(model(x_tr), y_tr)
        opt.zero_grad(); loss.backward(); opt.step()
    assert accuracy(model(x_te), y_te) > 0.8
    import matplotlib.pyplot as plt
    from tfmcourse.viz.attention import plot_attention
    plot_attention(torch.rand(2, 3, 3))
    print("release ok")
''')


def borrowed_venv(path: Path) -> Path:
    """A fresh venv that sees this environment's third-party packages (no download); returns its python.

    It has no pip or setuptools of its own (``python -m pip`` is this environment's), so nothing older
    shadows what it borrows.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    py = path / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return py


def test_release_in_a_fresh_venv(tmp_path):
    rel = build_release(tmp_path / "release", book_url=BOOK_URL).path
    assert {p.name for p in rel.iterdir()} == {"README.md", "pyproject.toml", "exercises", "tfmcourse"}
    stubbed = (rel / "tfmcourse" / "attention.py").read_text()
    assert "BEGIN SOLUTION" not in stubbed and 'raise NotImplementedError("implement causal_mask' in stubbed
    project = (rel / "pyproject.toml").read_text()
    assert "pytest" not in project and "student = [" in project and "jupyterlab" in project
    readme = (rel / "README.md").read_text()
    assert "make test" not in readme and "hidden tests" in readme and "`ch03_qkv.ipynb`" in readme
    py = borrowed_venv(tmp_path / "venv")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(rel)],
                   check=True, env={**os.environ, "PIP_NO_INDEX": "1"})
    out = subprocess.run([str(py), "-c", CHECK, str(tmp_path / "venv"), BOOK_URL], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "release ok" in out.stdout

    cli = tmp_path / "venv" / "bin" / "tfmcourse"
    usage = subprocess.run([str(cli), "--help"], capture_output=True, text=True, check=True).stdout
    assert "train" in usage and "sample" in usage and "grade" not in usage and "release" not in usage
    for command in ("grade", "release"):
        r = subprocess.run([str(cli), command, "x"], capture_output=True, text=True)
        assert r.returncode == 2 and "instructor command" in r.stderr and "Traceback" not in r.stderr, r.stderr


def install_block(readme: str) -> list[str]:
    """The commands of the README's install section (its first ``bash`` block), comments dropped."""
    section = readme[readme.index("## 1. Install"):]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)[1]
    return [ln.split(" #")[0].strip() for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]


def _reachable(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5).close()
        return True
    except OSError:
        return False


RUN_NOTEBOOKS = textwrap.dedent('''
    import sys, time, nbformat
    from pathlib import Path
    from nbclient import NotebookClient
    for path in sys.argv[1:]:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(nb, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(Path(path).parent)}}).execute()
        nbformat.write(nb, path)
        print(f"{path.rsplit('/', 1)[-1]}: {time.perf_counter() - start:.0f} s", flush=True)
''')


@pytest.mark.notebooks
def test_student_installs_per_readme_and_runs_every_notebook(tmp_path):
    rel = build_release(tmp_path / "course", book_url=BOOK_URL).path
    commands = install_block((rel / "README.md").read_text())
    assert commands[0].startswith("python3 -m venv") and any('".[student]"' in c for c in commands)
    torch_index = " --index-url https://download.pytorch.org/whl/cpu"
    if not _reachable("https://download.pytorch.org/whl/cpu/"):
        # These machines have no route to PyTorch's index; their pip configuration supplies the same CPU
        # wheel (torch==2.13.0+cpu) from a local folder.
        commands = [c.replace(torch_index, "") for c in commands]
    bindir = tmp_path / "bin"  # the README's `python3` is this interpreter
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    script = "set -euo pipefail\nset -x\n" + "\n".join(commands) + "\njupyter lab --version\n"
    start = time.perf_counter()
    r = subprocess.run(["bash", "-c", script], cwd=rel, env=env, capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-4000:]
    print(f"install per README: {time.perf_counter() - start:.0f} s")

    for path in sorted((rel / "exercises").glob("ch*.ipynb")):
        write_notebook(fill_answers(read_notebook(path), read_notebook(REPO_DIR / "solutions" / path.name)), path)
    py = rel / ".venv" / "bin" / "python"
    r = subprocess.run([str(py), "-c", RUN_NOTEBOOKS, *map(str, sorted((rel / "exercises").glob("ch*.ipynb")))],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=3600)
    print(r.stdout)
    assert r.returncode == 0, (r.stdout + r.stderr)[-6000:]
    assert r.stdout.count(" s\n") == len(list((rel / "exercises").glob("ch*.ipynb")))
    for path in sorted((rel / "exercises").glob("ch*.ipynb")):  # every piece was the student's own
        nb = json.loads(path.read_text())
        out = "".join("".join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code" for o in c["outputs"])
        # setup's missing chapters, the training cells' and the capstone's "not yet" messages
        assert not any(s in out for s in ("MISSING", "Finish the exercises first", "cannot be built", "missing:")), \
            out[-3000:]
        if path.name[:4] in ("ch02", "ch03", "ch04", "ch05", "ch06", "ch07"):
            assert "your answers: ch01" in out, out[:2000]
