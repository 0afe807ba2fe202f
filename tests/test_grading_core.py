"""The grading core: registry, notebook loading, wire format, the impl API (local and sandboxed), stubs."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from tfmcourse.grading import interfaces, nbgrader_check
from tfmcourse.grading.impl import LocalImpl, Ref, attr, call, obj_spec
from tfmcourse.grading.notebook import NotebookError, exec_cells, prepare_source, read_cells
from tfmcourse.grading.sandbox import Limits, SandboxImpl
from tfmcourse.grading.stubs import stub_module_source, stubbed_package
from tfmcourse.grading.testing import reference_source, write_notebook
from tfmcourse.grading.wire import InterfaceError, MissingName, SandboxError, StudentError
from tfmcourse.multihead import KVCache, MultiHeadAttention
from tfmcourse.train.schedule import warmup_cosine_lr


# --- registry ---------------------------------------------------------------------------------------------

def test_registry_names_exist_in_the_reference():
    for ch in interfaces.CHAPTERS.values():
        assert ch.slug.startswith(ch.id + "_")
        for name, module in ch.names.items():
            assert callable(interfaces.reference_object(name, module)), f"{ch.id}: {module}.{name}"


def test_chapter_lookup():
    assert interfaces.get_chapter("3").id == interfaces.get_chapter("ch03_qkv").id == "ch03"
    assert interfaces.chapter_from_filename("submitted/ada/ch04_multihead.ipynb").id == "ch04"
    assert interfaces.chapter_from_filename("ada.ipynb") is None
    earlier = [*interfaces.CHAPTERS["ch01"].names, *interfaces.CHAPTERS["ch02"].names]
    assert [n for n, _ in interfaces.prerequisites("ch03")] == earlier
    before_ch04 = {n for n, _ in interfaces.prerequisites("ch04")}
    assert set(interfaces.CHAPTERS["ch03"].names) <= before_ch04
    assert not set(interfaces.CHAPTERS["ch04"].names) & before_ch04
    with pytest.raises(KeyError, match="choose one of"):
        interfaces.get_chapter("ch99")


# --- notebook loading -------------------------------------------------------------------------------------

def _nb(tmp_path, cells, name="ch03_qkv.ipynb"):
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / name
    path.write_text(json.dumps(nb))
    return path


def test_read_cells_skips_nbgrader_tests_and_non_code(tmp_path):
    cells = [{"cell_type": "markdown", "source": "# title", "metadata": {}},
             {"cell_type": "code", "source": ["x = 1\n", "y = 2"], "metadata": {}},
             {"cell_type": "code", "source": "assert x == 1", "metadata": {"nbgrader": {"grade": True, "solution": False}}},
             {"cell_type": "code", "source": "z = 3", "metadata": {"nbgrader": {"grade": True, "solution": True}}},
             {"cell_type": "code", "source": "   ", "metadata": {}}]
    got = read_cells(_nb(tmp_path, cells))
    assert [(c.index, c.source) for c in got] == [(2, "x = 1\ny = 2"), (4, "z = 3")]


@pytest.mark.parametrize("text,match", [("{not json", "not valid notebook JSON"), ('{"cells": 3}', "no 'cells' list"),
                                        ('{"cells": []}', "no code cells")])
def test_read_cells_explains_bad_notebooks(tmp_path, text, match):
    path = tmp_path / "bad.ipynb"
    path.write_text(text)
    with pytest.raises(NotebookError, match=match):
        read_cells(path)


def test_magics_and_shell_escapes_are_dropped():
    assert prepare_source("%%time\nx = 1") == ""
    src = prepare_source("%matplotlib inline\n!pip install foo\nx = 1")
    assert "x = 1" in src and "pip" not in src
    compile(src, "<t>", "exec")
    assert prepare_source("x = 5 % 3") == "x = 5 % 3"


def test_exec_cells_reports_errors_and_goes_on(tmp_path):
    path = tmp_path / "s.py"
    path.write_text("a = 1\n# %%\nimport sys\nsys.exit(3)\n# %%\nb = a + 1\n# %%\n1/0\n")
    mod, problems = exec_cells(read_cells(path), {"pre": 7})
    assert mod.b == 2 and mod.pre == 7
    assert problems[0].startswith("cell 2 (`import sys`) raised SystemExit: 3 (line 2)")
    assert "ZeroDivisionError" in problems[1]


# --- the impl API on the reference ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ref():
    return LocalImpl.reference("ch04")


def test_call_and_outcome(ref):
    assert torch.equal(ref.call("causal_mask", 2, 3), torch.tensor([[True, True, False], [True, True, True]]))
    res = ref.outcome("padding_mask", "not a tensor")
    assert not res.ok and res.error_type == "AttributeError"
    with pytest.raises(StudentError, match="padding_mask raised AttributeError"):
        ref.call("padding_mask", "not a tensor")
    with pytest.raises(MissingName, match="not defined"):
        LocalImpl({}, "ch03").call("causal_mask", 2)


def test_run_module_with_copied_weights_and_gradients(ref):
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2).double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    g = torch.randn(2, 5, 8, dtype=torch.float64)
    res = ref.run_module("MultiHeadAttention", (8, 2), {}, mha.state_dict(), [call("forward", x, is_causal=True)],
                         backward=g, dtype=torch.float64)
    x_leaf = x.clone().requires_grad_()
    want = mha(x_leaf, is_causal=True)
    want.backward(g)
    torch.testing.assert_close(res.output, want.detach())
    torch.testing.assert_close(res.input_grads[0], x_leaf.grad)
    assert set(res.param_grads) == {n for n, _ in mha.named_parameters()}
    torch.testing.assert_close(res.param_grads["qkv.weight"], mha.qkv.weight.grad)


def test_run_module_stateful_scenario_with_objects(ref):
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(1, 4, 8)
    res = ref.run_module("MultiHeadAttention", (8, 2), {}, mha.state_dict(),
                         [call("forward", x[:, :3], cache=Ref("cache"), is_causal=True),
                          call("forward", x[:, 3:], cache=Ref("cache"), is_causal=True),
                          call("__len__", target="cache"), attr("k", target="cache")],
                         objects={"cache": obj_spec("KVCache")})
    full = mha(x, is_causal=True)
    torch.testing.assert_close(res.outputs[1], full[:, 3:].detach())
    assert res.outputs[2] == 4 and tuple(res.outputs[3].shape) == (1, 2, 4, 4)
    assert isinstance(KVCache(), KVCache)


def test_param_shapes_bf16_and_interface_errors(ref):
    assert ref.param_shapes("MultiHeadAttention", (8, 2))["qkv.weight"] == (24, 8)
    assert ref.state_dict_keys("MultiHeadAttention", (8, 2)) == ["proj.bias", "proj.weight", "qkv.bias", "qkv.weight"]
    mha = MultiHeadAttention(8, 2)
    out = ref.forward("MultiHeadAttention", {"d_model": 8, "n_heads": 2}, mha.state_dict(), torch.randn(1, 3, 8))
    assert out.dtype == torch.float32
    res = ref.run_module("MultiHeadAttention", (8, 2), {}, mha.state_dict(), [call("forward", torch.randn(1, 3, 8).bfloat16())],
                         dtype=torch.bfloat16)
    assert res.output.dtype == torch.bfloat16
    bad = OrderedDict((k.replace("qkv", "c_attn"), v) for k, v in mha.state_dict().items())
    with pytest.raises(InterfaceError, match=r"missing \['c_attn.bias', 'c_attn.weight'\].*unexpected \['qkv.bias'"):
        ref.run_module("MultiHeadAttention", (8, 2), {}, bad)


def test_train_scenario(ref):
    torch.manual_seed(0)
    x, y = torch.randn(32, 4, 8), torch.randn(32, 4, 8)
    sched = {"max_lr": 1e-2, "min_lr": 1e-3, "warmup_steps": 3, "total_steps": 20}
    res = ref.train("FeedForward", {"d_model": 8, "d_ff": 16}, x, y, steps=20, use_param_groups=True,
                    weight_decay=0.1, schedule=sched)
    assert res["losses"][-1] < res["losses"][0]
    assert res["lrs"] == [warmup_cosine_lr(s, **sched) for s in range(20)]
    assert set(res["state_dict"]) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}


# --- stubs ----------------------------------------------------------------------------------------------------

def test_stubbed_package_hides_only_the_graded_chapter(tmp_path):
    pkg = stubbed_package("ch04", tmp_path)
    src = (pkg / "multihead.py").read_text()
    assert "torch.cat([self.k, k]" not in src and "is disabled while ch04 is graded" in src
    assert "masked_fill(~mask" in (pkg / "attention.py").read_text()  # ch03 stays: it is a prerequisite
    assert not list(pkg.rglob("__pycache__"))
    assert pkg.parent.parent == tmp_path and stubbed_package("ch04", tmp_path) == pkg  # built once, reused
    ns: dict = {}
    exec(compile(stub_module_source("def f(x):\n    '''doc'''\n    return x\n", {"f"}, "m", "ch01"), "<s>", "exec"), ns)
    assert ns["f"].__tfm_stub__ and ns["f"].__doc__ == "doc"
    with pytest.raises(NotImplementedError, match="m.f is disabled while ch01 is graded"):
        ns["f"](1)


# --- the sandbox ----------------------------------------------------------------------------------------------

def test_basic_mode_is_confined_or_refused(tmp_path):
    impl = SandboxImpl(_probe_notebook(tmp_path), "ch03", Limits(timeout_s=30, namespaces=False))
    try:
        outcome = impl.outcome("causal_mask", 2)
    except SandboxError as e:
        outcome = e
    finally:
        impl.close()
    report = impl.report()
    assert report["sandbox"]["mode"] == "basic"
    if report["fatal"]:  # root, but privileges cannot be dropped: nothing of the student may run
        assert "refusing to run a submission as root" in report["fatal"] and isinstance(outcome, SandboxError)
    else:
        assert outcome.ok and (report["sandbox"]["dropped_privileges"] or os.geteuid() != 0)


def _probe_notebook(tmp_path):
    return write_notebook(tmp_path / "probe" / "ch03_qkv.ipynb", reference_source("ch03"))


def test_sandbox_module_api_prerequisites_and_names(tmp_path):
    good = write_notebook(tmp_path / "good" / "ch04_multihead.ipynb",
                          "def uses_prelude(q):\n    return scaled_dot_product_attention(q, q, q)\n# %%\n"
                          + reference_source("ch04"))
    src = reference_source("ch04").replace("self.qkv", "self.c_attn")
    bad = write_notebook(tmp_path / "bad" / "ch04_multihead.ipynb", src)
    torch.manual_seed(0)
    mha = MultiHeadAttention(8, 2)
    x, g = torch.randn(2, 3, 8), torch.randn(2, 3, 8)
    impl = SandboxImpl(good, "ch04", Limits(timeout_s=30))
    try:
        res = impl.run_module("MultiHeadAttention", (8, 2), {}, mha.state_dict(), [call("forward", x)], backward=g)
        want = mha(x)
        want.backward(g)
        torch.testing.assert_close(res.output, want.detach())
        torch.testing.assert_close(res.param_grads["proj.weight"], mha.proj.weight.grad)
        q = torch.randn(1, 2, 4)
        torch.testing.assert_close(impl.call("uses_prelude", q), torch.nn.functional.scaled_dot_product_attention(q, q, q))
    finally:
        impl.close()
    impl = SandboxImpl(bad, "ch04", Limits(timeout_s=30))
    try:
        with pytest.raises(InterfaceError, match=r"unexpected \['c_attn.bias', 'c_attn.weight'\]"):
            impl.run_module("MultiHeadAttention", (8, 2), {}, mha.state_dict())
    finally:
        impl.close()


def test_sandbox_reports_unreadable_notebook(tmp_path):
    path = tmp_path / "ch03_qkv.ipynb"
    path.write_text("{oops")
    impl = SandboxImpl(path, "ch03")
    with pytest.raises(Exception, match="not valid notebook JSON"):
        impl.call("causal_mask", 2)
    assert "not valid notebook JSON" in impl.report()["problems"][0]


# --- nbgrader glue ------------------------------------------------------------------------------------------

def test_nbgrader_check(capsys):
    ns: dict = {}
    exec(reference_source("ch03"), ns)
    result = nbgrader_check("ch03", ns, tests=["test_causal_mask"])
    assert result["score"] == result["max_score"] > 0
    n = len(result["tests"])
    assert n >= 2 and f"hidden tests: {n}/{n} passed" in capsys.readouterr().out
    ns["padding_mask"] = lambda lengths, S=None: torch.ones(len(lengths), 1, 1, S or int(lengths.max()), dtype=torch.bool)
    with pytest.raises(AssertionError, match="test_padding_mask_shape_and_values"):
        nbgrader_check("ch03", ns, tests="padding_mask", verbose=False)


_VIEW = """
import json, os
seen = {p: os.path.exists(p) for p in ("/work", "/root", "/home", "/srv", "/opt", "/mnt", "/media", "/tmp", "/etc/passwd")}
def writes(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return True
    except OSError:
        return False
print(json.dumps({"top": sorted(os.listdir("/")), "seen": seen, "uid": os.getuid(),
                  "scratch": writes("/tfm/scratch/x"), "lib": writes("/usr/lib/tfm_pwned")}))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/bin/python3") or not shutil.which("setpriv"),
                    reason="needs root (to become an unprivileged user) and a system python3")
def test_an_unprivileged_grader_gets_the_same_view():
    """bwrap-userns mode, as a user who is not root: the worker sees the runtime, its package, its scratch."""
    from tfmcourse.grading.jail import bwrap_args
    from tfmcourse.grading.sandbox import find_bwrap

    bwrap = find_bwrap()
    if bwrap is None:
        pytest.skip("bubblewrap is not installed")
    root = Path(tempfile.mkdtemp(prefix="tfm-test-view-"))  # pytest's own tmp folders are private to root
    stub = root / "pkg" / "tfmcourse"
    stub.mkdir(parents=True)
    for d in (root, root / "pkg", stub):
        d.chmod(0o755)
    code = ("import json, sys; sys.path.insert(0, %r); from jail import bwrap_args; import subprocess; "
            "cfg = {'env': {}, 'stub_package': %r, 'package_dir': '/nonexistent', 'limits': {'scratch_mb': 8}}; "
            "args = bwrap_args(%r, cfg, userns=True); args = args[:args.index('--')] + ['--', '/usr/bin/python3', "
            "'-I', '-c', %r]; r = subprocess.run(args, capture_output=True, text=True); "
            "print(r.stdout if r.returncode == 0 else 'FAILED ' + r.stderr)"
            % (str(Path(bwrap_args.__code__.co_filename).parent), str(stub), bwrap, _VIEW))
    try:
        out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-I",
                              "-c", code], capture_output=True, text=True, timeout=60, cwd="/")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if out.stdout.startswith("FAILED"):
        pytest.skip(f"unprivileged user namespaces are not allowed here: {out.stdout[:300]}")
    view = json.loads(out.stdout)
    assert view["uid"] == 65534
    assert not any(v for k, v in view["seen"].items()), view["seen"]
    assert set(view["top"]) <= {"usr", "lib", "lib64", "lib32", "libx32", "tfm", "proc", "dev", "etc"}, view["top"]
    assert view["scratch"] and not view["lib"]


def test_cells_run_as_in_a_jupyter_kernel(tmp_path):
    """A __future__ import may stand anywhere in a cell and holds for what follows (IPython runs a cell
    statement by statement); the grader's own __future__ flags do not leak into a cell."""
    path = tmp_path / "n.py"
    path.write_text("def f() -> Undefined:\n    return 1\n# %%\nx = 1\nfrom __future__ import annotations\n"
                    "def g() -> Undefined:\n    return 2\n# %%\ndef h() -> AlsoUndefined:\n    return 3\n")
    mod, problems = exec_cells(read_cells(path), {})
    assert "NameError" in problems[0] and "Undefined" in problems[0]  # annotations are evaluated eagerly at first
    assert mod.g() == 2 and mod.h() == 3  # after the import, in this cell and the next
