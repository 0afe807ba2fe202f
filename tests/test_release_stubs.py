"""Solution markers in the package and the stubber that turns them into the student release."""
import ast
import re
from pathlib import Path

import pytest

import tfmcourse
from tfmcourse.release import stub_source

PKG = Path(tfmcourse.__file__).parent
BEGIN = re.compile(r"^\s*# BEGIN SOLUTION ch\d\d\s*$", re.M)
END = re.compile(r"^\s*# END SOLUTION\s*$", re.M)
MARKED = sorted(p for p in PKG.rglob("*.py") if BEGIN.search(p.read_text()))


def test_exercise_modules_are_marked():
    names = {p.name for p in MARKED}
    assert {"embedding.py", "norm.py", "attention.py", "multihead.py", "ffn.py", "blocks.py", "optim.py",
            "vit.py"} <= names


@pytest.mark.parametrize("path", MARKED, ids=lambda p: p.name)
def test_stubbed_module_parses_and_has_no_solution_left(path):
    src = path.read_text()
    out = stub_source(src)
    ast.parse(out)
    assert not BEGIN.search(out) and not END.search(out)
    assert out.count("raise NotImplementedError(\"implement ") == len(BEGIN.findall(src))


def test_only_the_requested_chapter_is_stubbed():
    src = (PKG / "blocks.py").read_text()
    out = stub_source(src, {"ch06"})
    assert "implement DecoderBlock.forward (chapter 6" in out
    assert "implement EncoderBlock" not in out and "x = x + sa(self.norm1(x))" in out


def test_broken_markers_are_refused():
    with pytest.raises(ValueError, match="not closed"):
        stub_source("def f():\n    # BEGIN SOLUTION ch01\n    return 1\n")
    with pytest.raises(ValueError, match="without BEGIN"):
        stub_source("def f():\n    return 1\n    # END SOLUTION\n")
