"""Hidden suite, chapter 2: LayerNorm and RMSNorm written from their formulas.

Interface: ``LayerNorm(d_model, eps=1e-5, *, bias=True)`` (parameters ``weight``, ``bias``) and
``RMSNorm(d_model, eps=1e-6)`` (parameter ``weight``), both normalising over the last dimension only.
Every expected value is computed here, in the grader, with PyTorch (``F.layer_norm`` / ``F.rms_norm``, the
functions behind ``nn.LayerNorm`` and ``nn.RMSNorm``) in float64, from the same weights the implementation
was given.

One idea per test, so that one mistake costs the points of its own idea only: the formula tests
(``*_matches_pytorch``, ``test_layernorm_biased_variance``, ``*_eps``) compare tightly; the tests of
dtypes, shapes, half precision and eps load weight = 1 (and bias = 0), feed tokens of width 256 whose
features have mean 0, and compare at 1 %, so that a slip in the variance or in eps, or a mean forgotten
by LayerNorm or subtracted by RMSNorm, is not charged to them again.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tfmcourse.grading.checks import assert_finite, expect_tensor
from tfmcourse.grading.checks import assert_close_float32_ok as close
from tfmcourse.grading.impl import ModuleResult, attr, call

pytestmark = [pytest.mark.ch02]
LN, RMS = "LayerNorm", "RMSNorm"
D = 256  # width of the tokens in the tests that are not about the formula
LOOSE = {"rtol": 1e-2, "atol": 1e-3}  # 1 %: a wrong dtype, shape or gradient path is far off, d-1 vs d is not
DTYPES = {torch.float64: LOOSE, torch.float32: LOOSE, torch.bfloat16: {"rtol": 3e-2, "atol": 3e-2},
          torch.float16: {"rtol": 1e-2, "atol": 1e-2}}

REQUIREMENTS: list[tuple[str, list[str]]] = [
    ("LayerNorm holds weight and bias of shape (d,); bias=False: no bias parameter", ["test_layernorm_parameters"]),
    ("LayerNorm's weight starts at ones and its bias at zeros", ["test_layernorm_initial_values"]),
    ("LayerNorm(x) = (x - mean) / sqrt(var + eps) * weight + bias over the last dim (as nn.LayerNorm)",
     ["test_layernorm_matches_pytorch"]),
    ("the variance is the biased one (divide by d, not d - 1)", ["test_layernorm_biased_variance"]),
    ("eps is added to the variance inside the square root; default 1e-5; an explicit eps (0.0 too) is used",
     ["test_layernorm_eps"]),
    ("with bias=False there is no shift: y = normalised x * weight", ["test_layernorm_without_bias"]),
    ("mean and variance over the last dim only: each token is normalised on its own",
     ["test_layernorm_statistics_per_token"]),
    ("any leading axes: (d,), (1, d), (B, T, d), (A, B, T, d)", ["test_layernorm_leading_dims_and_one_token"]),
    ("the output has the input's dtype; float64 is computed in float64", ["test_layernorm_keeps_dtype"]),
    ("statistics in at least float32: float16 inputs of size ~300 do not overflow",
     ["test_layernorm_float16_large_values"]),
    ("gradients w.r.t. the input, weight and bias are those of nn.LayerNorm", ["test_layernorm_gradients"]),
    ("RMSNorm holds one parameter, weight (d,), initialised to ones; no bias", ["test_rmsnorm_parameters_and_init"]),
    ("RMSNorm(x) = x / sqrt(mean(x^2) + eps) * weight over the last dim (as nn.RMSNorm)",
     ["test_rmsnorm_matches_pytorch"]),
    ("RMSNorm does not subtract the mean", ["test_rmsnorm_does_not_subtract_the_mean"]),
    ("eps is added to mean(x^2) inside the square root; default 1e-6; an explicit eps (0.0 too) is used",
     ["test_rmsnorm_eps"]),
    ("any leading axes", ["test_rmsnorm_leading_dims_and_one_token"]),
    ("the output has the input's dtype; float64 is computed in float64", ["test_rmsnorm_keeps_dtype"]),
    ("mean(x^2) in at least float32: float16 inputs of size ~300 do not overflow",
     ["test_rmsnorm_float16_large_values"]),
    ("gradients w.r.t. the input and weight are those of nn.RMSNorm", ["test_rmsnorm_gradients"]),
]


def randn(*shape: int, seed: int = 0, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64) * scale + shift


def centred(x: torch.Tensor) -> torch.Tensor:
    """Each token's features shifted to mean 0 (tests that are not about subtracting the mean)."""
    return x - x.mean(-1, keepdim=True)


def weights(d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """float64 values that float32 represents exactly: ``run_module`` loads them into the module's float32
    parameters before casting the module, so nothing is rounded on the way."""
    return randn(d, seed=seed, shift=shift).float().double()


def run(impl, name: str, d: int, x: torch.Tensor, *, state: dict | None = None, dtype: torch.dtype = torch.float64,
        backward: torch.Tensor | None = None, **init) -> ModuleResult:
    """Build ``name(d, **init)``, load ``state``, cast to ``dtype``, run ``forward(x)`` in eval mode."""
    return impl.run_module(name, (d,), init, state, [call("forward", x)], dtype=dtype, backward=backward)


def unit(name: str, d: int) -> dict:
    """weight = 1 (and bias = 0): the layer only normalises, whatever its initialisation."""
    state = {"weight": torch.ones(d, dtype=torch.float64)}
    if name == LN:
        state["bias"] = torch.zeros(d, dtype=torch.float64)
    return state


def expected_of(name: str, x, w=None, b=None, eps=None) -> torch.Tensor:
    d = x.size(-1)
    if name == LN:
        return F.layer_norm(x.double(), (d,), None if w is None else w.double(), None if b is None else b.double(),
                            1e-5 if eps is None else eps)
    return F.rms_norm(x.double(), (d,), None if w is None else w.double(), 1e-6 if eps is None else eps)


def ln_state(d: int, seed: int = 0, bias: bool = True) -> dict:
    state = {"weight": weights(d, seed, shift=1.0)}
    if bias:
        state["bias"] = weights(d, seed + 1)
    return state


# --- checks shared by both norms (their tests are separate, so each norm earns its own points) ------------------

def check_eps(impl, name: str, default: float) -> None:
    """eps inside the square root, its default, and an explicit eps (0.0 included) used as given."""
    d, state = 64, unit(name, 64)
    x = centred(randn(2, d, seed=9, scale=0.1))  # variance ~0.01: eps = 0.1 changes the result a lot
    close(run(impl, name, d, x, state=state, eps=0.1).output, expected_of(name, x, eps=0.1),
          f"{name}({d}, eps=0.1) on inputs of size ~0.1 (eps inside the square root)", **LOOSE)
    tiny = centred(randn(2, d, seed=10, scale=default ** 0.5))  # statistics ~ the default eps: it matters
    close(run(impl, name, d, tiny, state=state).output, expected_of(name, tiny),
          f"{name}({d}) with the default eps on inputs of variance ~{default:g} (is the default eps {default:g}?)",
          **LOOSE)
    tinier = centred(randn(2, d, seed=11, scale=1e-4))  # variance 1e-8: eps=0.0 must not become the default
    close(run(impl, name, d, tinier, state=state, eps=0.0).output, expected_of(name, tinier, eps=0.0),
          f"{name}({d}, eps=0.0) on inputs of variance ~1e-8 (an explicit 0.0 is not 'not given')", **LOOSE)


def check_dtypes(impl, name: str, x: torch.Tensor) -> None:
    """Each dtype in, the same dtype out (values at that dtype's tolerance); float64 is not rounded to float32."""
    state = unit(name, x.size(-1))
    for dtype, tol in DTYPES.items():
        out = run(impl, name, x.size(-1), x.to(dtype), state=state, dtype=dtype).output
        out = expect_tensor(out, f"{name} output for {dtype} inputs", shape=tuple(x.shape), dtype=dtype)
        close(out, expected_of(name, x.to(dtype)).to(dtype), f"{name} output in {dtype}", **tol)
    # a change of 1e-12, far below float32's resolution, must show in a float64 computation
    nudged = x + 1e-12 * torch.sign(randn(*x.shape, seed=99))
    a = run(impl, name, x.size(-1), x, state=state).output
    b = run(impl, name, x.size(-1), nudged, state=state).output
    frac = float((a != b).double().mean())
    assert frac > 0.9, ("float64 inputs must be computed in float64 (promote_types(x.dtype, torch.float32)): "
                        f"changing the input by 1e-12 changed only {100 * frac:.0f}% of the outputs")


def check_float16(impl, name: str, x: torch.Tensor) -> None:
    x = x.half()
    out = expect_tensor(run(impl, name, x.size(-1), x, state=unit(name, x.size(-1)), dtype=torch.float16).output,
                        f"{name} float16 output", shape=tuple(x.shape))
    assert_finite(out, f"{name} output for float16 inputs of size ~300")
    close(out.double(), expected_of(name, x), f"{name} output for float16 inputs of size ~300", **DTYPES[torch.float16])


def check_leading_dims(impl, name: str, make) -> None:
    state = unit(name, D)
    for shape in ((D,), (1, D), (1, 1, D), (2, 3, 4, D)):
        x = make(*shape)
        out = expect_tensor(run(impl, name, D, x, state=state).output, f"{name} output for input {shape}", shape=shape)
        close(out, expected_of(name, x), f"{name} output for input {shape}", **LOOSE)


# --- LayerNorm -----------------------------------------------------------------------------------------------

@pytest.mark.points(1)
def test_layernorm_parameters(impl):
    """LayerNorm(d) holds ``weight`` and ``bias`` of shape (d,); with ``bias=False`` only ``weight``."""
    shapes = impl.param_shapes(LN, (6,))
    assert shapes == {"weight": (6,), "bias": (6,)}, \
        f"parameters of LayerNorm(6): expected {{'weight': (6,), 'bias': (6,)}}, got {shapes}"
    shapes = impl.param_shapes(LN, (6,), {"bias": False})
    assert shapes == {"weight": (6,)}, \
        f"parameters of LayerNorm(6, bias=False): expected {{'weight': (6,)}}, got {shapes}"


@pytest.mark.points(1)
def test_layernorm_initial_values(impl):
    """A fresh LayerNorm has weight = 1 and bias = 0, so it only normalises."""
    state = impl.run_module(LN, (8,), {}, None, [attr("weight")], dtype=torch.float64,
                            return_state=True).state_dict or {}
    close(state.get("weight"), torch.ones(8, dtype=torch.float64), "initial weight (gamma)")
    close(state.get("bias"), torch.zeros(8, dtype=torch.float64), "initial bias (beta)")


@pytest.mark.points(2)
def test_layernorm_matches_pytorch(impl):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last dim equals nn.LayerNorm (float64)."""
    x = randn(2, 5, 16, seed=2, scale=2.0, shift=1.5)
    state = ln_state(16, seed=3)
    out = expect_tensor(run(impl, LN, 16, x, state=state).output, "LayerNorm output", shape=(2, 5, 16))
    close(out, expected_of(LN, x, state["weight"], state["bias"]), "LayerNorm output")


@pytest.mark.points(1)
def test_layernorm_biased_variance(impl):
    """The variance is the biased one, mean((x - mean)^2), as in nn.LayerNorm (not divided by d - 1)."""
    x = torch.tensor([[-3.0, -2.0, 0.0, 5.0], [0.0, 0.0, 1.0, -1.0]], dtype=torch.float64)
    close(run(impl, LN, 4, x, state=unit(LN, 4)).output, expected_of(LN, x),
          "LayerNorm(4) output (biased variance: divide by d, not d - 1)")


@pytest.mark.points(1)
def test_layernorm_eps(impl):
    """eps is added to the variance inside the square root; default 1e-5; an explicit eps, 0.0 included, is used."""
    check_eps(impl, LN, 1e-5)


@pytest.mark.points(1)
def test_layernorm_without_bias(impl):
    """``bias=False``: no shift, y = (x - mean) / sqrt(var + eps) * weight."""
    x = centred(randn(2, 3, D, seed=7, scale=2.0))
    state = ln_state(D, seed=8, bias=False)
    out = run(impl, LN, D, x, state=state, bias=False).output
    close(out, expected_of(LN, x, state["weight"]), "LayerNorm(bias=False) output", **LOOSE)


@pytest.mark.points(1)
def test_layernorm_statistics_per_token(impl):
    """Mean and variance are taken over the last dim only: each token is normalised on its own."""
    x = centred(randn(3, 4, D, seed=11)) * torch.logspace(-1, 1, 4, dtype=torch.float64)[:, None]
    out = expect_tensor(run(impl, LN, D, x, state=unit(LN, D)).output, "LayerNorm output", shape=(3, 4, D))
    x2 = x.clone()
    x2[0, 0] = x2[0, 0] * 100.0
    out2 = expect_tensor(run(impl, LN, D, x2, state=unit(LN, D)).output, "LayerNorm output", shape=(3, 4, D))
    keep = torch.ones(3, 4, dtype=torch.bool)
    keep[0, 0] = False
    close(out2[keep], out[keep], "outputs of the other tokens after changing token (0, 0) "
          "(they must not change: statistics over the last dim only)")
    close(out, expected_of(LN, x), "LayerNorm output for tokens of different scales", **LOOSE)


@pytest.mark.points(1)
def test_layernorm_leading_dims_and_one_token(impl):
    """Inputs (d,), (1, d), (1, 1, d) and (2, 3, 4, d) all work: only the last dim is normalised."""
    check_leading_dims(impl, LN, lambda *shape: centred(randn(*shape, seed=18, scale=2.0)))


@pytest.mark.points(2)
def test_layernorm_keeps_dtype(impl):
    """float64, float32, bfloat16 and float16 inputs give outputs of the same dtype; float64 is computed in float64."""
    check_dtypes(impl, LN, centred(randn(2, 3, D, seed=13, scale=2.0)))


@pytest.mark.points(1)
def test_layernorm_float16_large_values(impl):
    """float16 inputs of size ~300 are normalised right: compute the statistics in float32 (their squares overflow)."""
    check_float16(impl, LN, centred(randn(2, 4, D, seed=15, scale=300.0)))


@pytest.mark.points(2)
def test_layernorm_gradients(impl):
    """Gradients w.r.t. the input, weight and bias equal those of nn.LayerNorm (float64)."""
    x = randn(3, 4, D, seed=4, scale=1.5, shift=-1.0)
    state = ln_state(D, seed=5)
    g = randn(3, 4, D, seed=6, shift=1.0)
    res = run(impl, LN, D, x, state=state, backward=g)
    leaves = {k: v.clone().requires_grad_() for k, v in {"x": x, **state}.items()}
    expected_of(LN, leaves["x"], leaves["weight"], leaves["bias"]).backward(g)
    got = {"x": res.input_grads[0] if res.input_grads else None, **res.param_grads}
    for name, what in (("x", "the input"), ("weight", "weight"), ("bias", "bias")):
        assert got.get(name) is not None, f"no gradient reached {what}: is it detached or unused?"
        close(got[name], leaves[name].grad, f"gradient w.r.t. {what}", **LOOSE)


# --- RMSNorm -------------------------------------------------------------------------------------------------

@pytest.mark.points(1)
def test_rmsnorm_parameters_and_init(impl):
    """RMSNorm(d) holds one parameter, ``weight`` (d,), initialised to ones; no bias."""
    shapes = impl.param_shapes(RMS, (6,))
    assert shapes == {"weight": (6,)}, f"parameters of RMSNorm(6): expected {{'weight': (6,)}}, got {shapes}"
    state = impl.run_module(RMS, (6,), {}, None, [attr("weight")], dtype=torch.float64,
                            return_state=True).state_dict or {}
    close(state.get("weight"), torch.ones(6, dtype=torch.float64), "initial weight")


@pytest.mark.points(2)
def test_rmsnorm_matches_pytorch(impl):
    """y = x / sqrt(mean(x^2) + eps) * weight over the last dim equals nn.RMSNorm(eps=1e-6) (float64)."""
    x = randn(2, 5, 16, seed=21, scale=2.0, shift=0.5)
    w = weights(16, 22, shift=1.0)
    out = expect_tensor(run(impl, RMS, 16, x, state={"weight": w}).output, "RMSNorm output", shape=(2, 5, 16))
    close(out, expected_of(RMS, x, w), "RMSNorm output")


@pytest.mark.points(1)
def test_rmsnorm_does_not_subtract_the_mean(impl):
    """RMSNorm only rescales: inputs with a large mean keep it (no mean subtraction, unlike LayerNorm)."""
    x = randn(2, 3, D, seed=26, shift=4.0)
    out = expect_tensor(run(impl, RMS, D, x, state=unit(RMS, D)).output, "RMSNorm output", shape=(2, 3, D))
    assert bool((out.mean(-1) > 0.5).all()), \
        "RMSNorm outputs of inputs with mean ~4 have mean ~0: RMSNorm must not subtract the mean"
    close(out, expected_of(RMS, x), "RMSNorm output for inputs with mean ~4", **LOOSE)


@pytest.mark.points(1)
def test_rmsnorm_eps(impl):
    """eps is added to mean(x^2) inside the square root; default 1e-6; an explicit eps, 0.0 included, is used."""
    check_eps(impl, RMS, 1e-6)


@pytest.mark.points(1)
def test_rmsnorm_leading_dims_and_one_token(impl):
    """Inputs (d,), (1, d), (1, 1, d) and (2, 3, 4, d) all work: only the last dim is normalised."""
    check_leading_dims(impl, RMS, lambda *shape: centred(randn(*shape, seed=34, scale=2.0)))


@pytest.mark.points(2)
def test_rmsnorm_keeps_dtype(impl):
    """float64, float32, bfloat16 and float16 inputs give outputs of the same dtype; float64 is computed in float64."""
    check_dtypes(impl, RMS, centred(randn(2, 3, D, seed=29, scale=2.0)))


@pytest.mark.points(1)
def test_rmsnorm_float16_large_values(impl):
    """float16 inputs of size ~300 are normalised right: compute mean(x^2) in float32 (x^2 overflows float16)."""
    check_float16(impl, RMS, centred(randn(2, 4, D, seed=31, scale=300.0)))


@pytest.mark.points(2)
def test_rmsnorm_gradients(impl):
    """Gradients w.r.t. the input and weight equal those of nn.RMSNorm (float64)."""
    x = randn(3, 4, D, seed=23, scale=1.5, shift=0.5)
    w = weights(D, 24, shift=1.0)
    g = randn(3, 4, D, seed=25, shift=1.0)
    res = run(impl, RMS, D, x, state={"weight": w}, backward=g)
    xl, wl = x.clone().requires_grad_(), w.clone().requires_grad_()
    expected_of(RMS, xl, wl).backward(g)
    got_x = res.input_grads[0] if res.input_grads else None
    assert got_x is not None, "no gradient reached the input: is the output detached?"
    close(got_x, xl.grad, "gradient w.r.t. the input", **LOOSE)
    assert res.param_grads.get("weight") is not None, "no gradient reached weight: is it used?"
    close(res.param_grads["weight"], wl.grad, "gradient w.r.t. weight", **LOOSE)
