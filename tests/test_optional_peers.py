"""The suite passes without the optional peers (README, "Optional peers"): ``make test`` installs
transformers and safetensors, so this runs the files that use them again with those libraries (and timm,
tokenizers) made unimportable, and checks that their tests skip cleanly instead of failing, and that
reading a safetensors checkpoint says which package to install."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).parent
OPTIONAL = ("transformers", "safetensors", "timm", "tokenizers", "torchvision")

BLOCKED_RUN = textwrap.dedent(f"""
    import sys

    class Absent:
        # a meta-path finder that makes the optional peers look uninstalled
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {OPTIONAL!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
            return None

    sys.meta_path.insert(0, Absent())
    import pytest
    sys.exit(pytest.main(sys.argv[1:]))
""")


def test_peer_tests_skip_cleanly_without_the_optional_libraries(tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, "-q", "-rs", "-p", "no:cacheprovider", "-p", "no:xdist",
         str(TESTS / "test_pretrained.py"), str(TESTS / "test_bench.py") + "::test_optional_peers_build_and_train_when_installed"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "failed" not in text and "error" not in text.lower().replace("errors", ""), text
    for name in ("transformers", "timm"):
        assert f"could not import '{name}'" in text, text  # their tests are reported as skipped, not hidden


def test_reading_safetensors_without_the_package_says_what_to_install(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2", "vocab_size": 8, "n_positions": 4, '
                                          '"n_embd": 4, "n_layer": 1, "n_head": 1}')
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 16)
    code = BLOCKED_RUN.split("import pytest")[0] + textwrap.dedent(f"""
        from tfmcourse.gpt import GPT
        try:
            GPT.from_hf({str(tmp_path)!r})
        except ImportError as e:
            print("IMPORT-ERROR", e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "IMPORT-ERROR" in out.stdout and "pip install safetensors" in out.stdout, out.stdout + out.stderr
