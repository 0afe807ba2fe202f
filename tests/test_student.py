"""tfmcourse.student: a student's answers reused by later notebooks and assembled into whole models."""
import json

import pytest
import torch

import tfmcourse
from tfmcourse import GPT, GPTConfig, student
from tfmcourse.grading.testing import reference_source

pytestmark = pytest.mark.ch06


def _write(path, cells):
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "outputs": [],
                     "metadata": {"nbgrader": {"solution": True, "grade": False, "grade_id": f"a{i}",
                                               "locked": False, "task": False, "schema_version": 3}},
                     "source": src} for i, src in enumerate(cells)],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


@pytest.fixture(autouse=True)
def _restore():
    yield
    student.restore()


def test_assemble_builds_models_from_the_students_pieces(tmp_path):
    for ch, slug in (("ch03", "ch03_qkv"), ("ch04", "ch04_multihead"), ("ch02", "ch02_residuals_norms")):
        _write(tmp_path / f"{slug}.ipynb", reference_source(ch).split("\n# %%\n"))
    report = student.assemble(tmp_path, ["ch02", "ch03", "ch04"])
    assert {"LayerNorm", "scaled_dot_product_attention", "MultiHeadAttention"} <= set(report.yours)
    assert not report.missing
    model = GPT(GPTConfig(vocab_size=20, block_size=8, n_layers=1, n_heads=2, d_model=8))
    assert type(model.blocks[0].attn).__module__ == "student_ch04"
    assert type(model.blocks[0].norm1).__module__ == "student_ch02"  # built with the student's LayerNorm
    logits, loss = model(torch.randint(0, 20, (2, 8)), torch.randint(0, 20, (2, 8)))
    assert torch.isfinite(loss)
    student.restore()
    assert tfmcourse.MultiHeadAttention.__module__ == "tfmcourse.multihead"
    assert type(GPT(GPTConfig(vocab_size=20, block_size=8, n_layers=1, n_heads=2, d_model=8)).blocks[0].norm1) \
        is torch.nn.LayerNorm


def test_unanswered_and_broken_cells_are_reported_not_installed(tmp_path):
    _write(tmp_path / "ch03_qkv.ipynb", [
        "def causal_mask(T, S=None, *, device=None):\n    # YOUR CODE HERE\n    raise NotImplementedError()",
        "def padding_mask(lengths, S=None):\n    return 1 / 0 if False else None",
        "def broken(:",
    ])
    found, problems = student.load_answers("ch03", tmp_path)
    assert "causal_mask" not in found and "padding_mask" in found
    text = "\n".join(problems)
    assert "causal_mask is not implemented yet" in text and "SyntaxError" in text
    assert "scaled_dot_product_attention is not defined" in text
    report = student.assemble(tmp_path, ["ch03"])
    assert "causal_mask" in report.reference  # the instructor's checkout falls back to the reference


def test_setup_gives_earlier_chapters_from_the_reference_when_installed(tmp_path, capsys):
    ns = {}
    origin = student.setup("ch04", ns, tmp_path)
    assert ns["scaled_dot_product_attention"] is tfmcourse.attention.scaled_dot_product_attention
    assert set(origin.values()) == {"reference"} and "LayerNorm" in origin and "MultiHeadAttention" not in origin
    with pytest.raises(FileNotFoundError, match="do chapter 3"):
        student.load_answers("ch03", tmp_path)
    assert capsys.readouterr().out.strip() == "ch04: earlier chapters from the reference package (instructor checkout)"


def test_in_a_release_setup_prefers_your_answers_and_falls_back_to_released_solutions(tmp_path, capsys,
                                                                                       monkeypatch):
    # a student release whose package holds every chapter's solution (tfmcourse release --solutions-through ch07)
    monkeypatch.setattr(student, "release_info", lambda: object())
    mine = [("def causal_mask(T, S=None, *, device=None):\n    S = T if S is None else S\n"
             "    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)"),
            ("def padding_mask(lengths, S=None):\n    S = int(lengths.max()) if S is None else S\n"
             "    return (torch.arange(S)[None, :] < lengths[:, None])[:, None, None, :]"),
            ("def scaled_dot_product_attention(q, k, v, mask=None, *, is_causal=False, return_weights=False):\n"
             "    # YOUR CODE HERE\n    raise NotImplementedError()")]
    _write(tmp_path / "ch03_qkv.ipynb", mine)
    ns = {}
    origin = student.setup("ch04", ns, tmp_path)
    assert origin["causal_mask"] == origin["padding_mask"] == "yours"
    assert origin["scaled_dot_product_attention"] == "solution" and origin["LayerNorm"] == "solution"
    assert ns["causal_mask"].__module__ == "student_ch03"
    assert ns["scaled_dot_product_attention"] is tfmcourse.attention.scaled_dot_product_attention
    assert tfmcourse.attention.causal_mask is ns["causal_mask"]  # installed: the package uses your answer
    out = capsys.readouterr().out.splitlines()
    assert out == [("ch04: your answers: ch03 (causal_mask, padding_mask) | released solutions: ch01, ch02, "
                    "ch03 (scaled_dot_product_attention)")]
    reference = student._reference["causal_mask"]
    _write(tmp_path / "ch03_qkv.ipynb", ["def causal_mask(T, S=None, *, device=None):\n    return 1 +"])
    origin = student.setup("ch04", ns, tmp_path)  # the cell run again after the student broke their answer
    assert origin["causal_mask"] == "solution" and ns["causal_mask"] is reference is tfmcourse.attention.causal_mask


def test_the_missing_chapters_line():
    state = {"ch01": {"TokenEmbedding": "yours"}, "ch02": {"LayerNorm": "missing"},
             "ch03": {"causal_mask": "yours", "scaled_dot_product_attention": "missing"},
             "ch04": {"MultiHeadAttention": "missing"}, "ch05": {"EncoderBlock": "solution"}}
    notes = {"ch02": "ch02_residuals_norms.ipynb not found",
             "ch03": "ch03_qkv.ipynb: scaled_dot_product_attention not written yet",
             "ch04": "ch04_multihead.ipynb: cell 3 (`class MultiHeadAttention(nn.Module):`) raised SyntaxError"}
    line = student._summary("ch06", state, notes)
    assert "\n" not in line and line.startswith("ch06: your answers: ch01, ch03 (causal_mask)")
    assert "released solutions: ch05" in line
    assert "MISSING: ch06 builds on chapters 3 and 4" in line  # not ch02: chapter 6 does not need it
    assert notes["ch03"] in line and notes["ch04"] in line and notes["ch02"] not in line
    assert student._summary("ch03", {"ch01": {"TokenEmbedding": "missing"}}, {}) == "ch03: uses no earlier chapter"


def test_assemble_again_takes_the_latest_answers_and_restore_undoes_all(tmp_path):
    """Re-running the capstone's setup after fixing a chapter installs the fix; restore() also reaches modules
    imported after the install."""
    import sys
    import types

    reference = tfmcourse.attention.causal_mask
    version = ("def causal_mask(T, S=None, *, device=None):\n    return torch.ones(T, S or T, dtype=torch.bool)\n"
               "causal_mask.version = {}")
    _write(tmp_path / "ch03_qkv.ipynb", [version.format(1)])
    student.assemble(tmp_path, ["ch03"])
    assert tfmcourse.attention.causal_mask.version == 1
    late = types.ModuleType("tfmcourse._late_import_test")  # a module imported after the install binds the answer
    exec("from tfmcourse.attention import causal_mask", late.__dict__)
    sys.modules[late.__name__] = late
    assert late.causal_mask.version == 1
    _write(tmp_path / "ch03_qkv.ipynb", [version.format(2)])
    student.assemble(tmp_path, ["ch03"])
    assert tfmcourse.attention.causal_mask.version == 2 and late.causal_mask.version == 2
    student.restore()
    del sys.modules[late.__name__]
    assert tfmcourse.attention.causal_mask is reference and late.causal_mask is reference
