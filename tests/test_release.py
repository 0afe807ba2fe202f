"""`tfmcourse release`: installed into a fresh venv, the stubs raise and everything else still works."""
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from tfmcourse.release import build_release
from tfmcourse.exercises import REPO_DIR

pytestmark = pytest.mark.skipif(not any((REPO_DIR / "exercises").glob("ch*.ipynb")),
                                reason="exercises/ not generated yet")

CHECK = textwrap.dedent('''
    import matplotlib
    matplotlib.use("Agg")
    from pathlib import Path
    import sys, torch
    import tfmcourse
    assert Path(tfmcourse.__file__).resolve().is_relative_to(Path(sys.argv[1]).resolve()), tfmcourse.__file__
    from tfmcourse.attention import scaled_dot_product_attention
    from tfmcourse import LayerNorm, MultiHeadAttention, ViT, ViTConfig
    for make in (lambda: scaled_dot_product_attention(torch.ones(1, 2, 2), torch.ones(1, 2, 2), torch.ones(1, 2, 2)),
                 lambda: LayerNorm(4), lambda: MultiHeadAttention(8, 2),
                 lambda: ViT(ViTConfig(image_size=8, patch_size=4, in_chans=1, n_classes=3, d_model=8, n_layers=1, n_heads=2))):
        try:
            make()
        except NotImplementedError as e:
            assert "implement " in str(e) and "chapter" in str(e), str(e)
        else:
            raise AssertionError("a stub did not raise")
    # what is not an exercise still works: data, tokenizer, metrics, the training loop, plots
    from tfmcourse.data import load_digits_split, stdlib_corpus
    from tfmcourse.tokenizer import CharTokenizer
    from tfmcourse.metrics import accuracy
    from tfmcourse.train.schedule import warmup_cosine_lr
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


def test_release_in_a_fresh_venv(tmp_path):
    rel = build_release(tmp_path / "release")
    assert (rel / "exercises").is_dir() and not (rel / "tests").exists()
    assert not (rel / "solutions").exists()
    stubbed = (rel / "tfmcourse" / "attention.py").read_text()
    assert "BEGIN SOLUTION" not in stubbed and 'raise NotImplementedError("implement causal_mask' in stubbed
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    # Third-party dependencies come from this environment (no downloads); tfmcourse from the release.
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(rel)],
                   check=True, env={**os.environ, "PIP_NO_INDEX": "1"})
    out = subprocess.run([str(py), "-c", CHECK, str(venv)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "release ok" in out.stdout
