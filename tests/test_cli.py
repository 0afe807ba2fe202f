"""The ``tfmcourse`` command line: plain-text help for every command, and a top-level help that is fast."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tfmcourse.cli import COMMANDS

RST = re.compile(r"``|:(mod|func|class|data|meth|attr):`")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_is_plain_text(command):
    out = subprocess.run([sys.executable, "-m", "tfmcourse.cli", command, "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage: tfmcourse" in out.stdout
    assert not RST.search(out.stdout), f"reStructuredText markup in `tfmcourse {command} --help`:\n{out.stdout}"


def test_top_level_help_does_not_import_torch():
    code = "import sys; from tfmcourse.cli import main; main(['--help']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith("False"), out.stdout + out.stderr
    assert all(name in out.stdout for name in COMMANDS)
