"""Hidden suite, chapter 2: LayerNorm and RMSNorm written from their formulas.

Interface: ``LayerNorm(d_model, eps=1e-5, *, bias=True)`` (parameters ``weight``, ``bias``) and
``RMSNorm(d_model, eps=1e-6)`` (parameter ``weight``), both normalising over the last dimension only.
Every expected value is computed here, in the grader, with PyTorch (``F.layer_norm`` / ``F.rms_norm``, the
functions behind ``nn.LayerNorm`` and ``nn.RMSNorm``) in float64, from the same weights the implementation
was given.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tfmcourse.grading.checks import assert_close, assert_finite, expect_tensor
from tfmcourse.grading.impl import ModuleResult, call

pytestmark = [pytest.mark.ch02]
LN, RMS = "LayerNorm", "RMSNorm"
DTYPES = [torch.float64, torch.float32, torch.bfloat16]


def close(actual, expected: torch.Tensor, what: str, **kw) -> None:
    """``assert_close`` with float64 expectations compared at rtol=1e-5, atol=1e-6: tight enough for any
    formula mistake, loose enough for an implementation that computes a float64 input in float32."""
    if expected.dtype == torch.float64:
        kw = {"rtol": 1e-5, "atol": 1e-6, **kw}
    assert_close(actual, expected, what, **kw)


def randn(*shape: int, seed: int = 0, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64) * scale + shift


def weights(d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """float64 values that float32 represents exactly: ``run_module`` loads them into the module's float32
    parameters before casting the module, so nothing is rounded on the way."""
    return randn(d, seed=seed, shift=shift).float().double()


def run(impl, name: str, d: int, x: torch.Tensor, *, state: dict | None = None, dtype: torch.dtype = torch.float64,
        backward: torch.Tensor | None = None, return_state: bool = False, **init) -> ModuleResult:
    """Build ``name(d, **init)``, load ``state``, cast to ``dtype``, run ``forward(x)`` in eval mode."""
    return impl.run_module(name, (d,), init, state, [call("forward", x)], dtype=dtype, backward=backward,
                           return_state=return_state)


def ln_expected(x, w=None, b=None, eps=1e-5) -> torch.Tensor:
    d = x.size(-1)
    return F.layer_norm(x.double(), (d,), None if w is None else w.double(), None if b is None else b.double(), eps)


def rms_expected(x, w=None, eps=1e-6) -> torch.Tensor:
    return F.rms_norm(x.double(), (x.size(-1),), None if w is None else w.double(), eps)


def ln_state(d: int, seed: int = 0, bias: bool = True) -> dict:
    state = {"weight": weights(d, seed, shift=1.0)}
    if bias:
        state["bias"] = weights(d, seed + 1)
    return state


# --- LayerNorm -----------------------------------------------------------------------------------------------

@pytest.mark.points(1)
def test_layernorm_parameters(impl):
    """LayerNorm(d) holds ``weight`` and ``bias`` of shape (d,); with ``bias=False`` only ``weight``."""
    shapes = impl.param_shapes(LN, (6,))
    assert shapes == {"weight": (6,), "bias": (6,)}, \
        f"parameters of LayerNorm(6): expected {{'weight': (6,), 'bias': (6,)}}, got {shapes}"
    shapes = impl.param_shapes(LN, (6,), {"bias": False})
    assert shapes == {"weight": (6,)}, f"parameters of LayerNorm(6, bias=False): expected {{'weight': (6,)}}, got {shapes}"


@pytest.mark.points(1)
def test_layernorm_starts_as_plain_normalisation(impl):
    """A fresh LayerNorm has weight = 1 and bias = 0, so it only normalises (mean 0, variance 1 per token)."""
    x = randn(2, 3, 8, seed=1, scale=3.0, shift=2.0)
    res = run(impl, LN, 8, x, return_state=True)
    state = res.state_dict or {}
    close(state.get("weight"), torch.ones(8, dtype=torch.float64), "initial weight (gamma)")
    close(state.get("bias"), torch.zeros(8, dtype=torch.float64), "initial bias (beta)")
    close(res.output, ln_expected(x), "output of a fresh LayerNorm(8)")


@pytest.mark.points(2)
def test_layernorm_matches_pytorch(impl):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last dim equals nn.LayerNorm (float64)."""
    x = randn(2, 5, 16, seed=2, scale=2.0, shift=1.5)
    state = ln_state(16, seed=3)
    out = expect_tensor(run(impl, LN, 16, x, state=state).output, "LayerNorm output", shape=(2, 5, 16))
    close(out, ln_expected(x, state["weight"], state["bias"]), "LayerNorm output")


@pytest.mark.points(2)
def test_layernorm_gradients(impl):
    """Gradients w.r.t. the input, weight and bias equal those of nn.LayerNorm (float64)."""
    x = randn(3, 4, 8, seed=4, scale=1.5, shift=-1.0)
    state = ln_state(8, seed=5)
    g = randn(3, 4, 8, seed=6)
    res = run(impl, LN, 8, x, state=state, backward=g)
    leaves = {k: v.clone().requires_grad_() for k, v in {"x": x, **state}.items()}
    ln_expected(leaves["x"], leaves["weight"], leaves["bias"]).backward(g)
    got = {"x": res.input_grads[0] if res.input_grads else None, **res.param_grads}
    for name, what in (("x", "the input"), ("weight", "weight"), ("bias", "bias")):
        assert got.get(name) is not None, f"no gradient reached {what}: is it detached or unused?"
        close(got[name], leaves[name].grad, f"gradient w.r.t. {what}")


@pytest.mark.points(1)
def test_layernorm_without_bias(impl):
    """``bias=False``: no bias parameter, y = (x - mean) / sqrt(var + eps) * weight."""
    x = randn(2, 3, 8, seed=7, shift=0.5)
    state = ln_state(8, seed=8, bias=False)
    out = run(impl, LN, 8, x, state=state, bias=False).output
    close(out, ln_expected(x, state["weight"]), "LayerNorm(bias=False) output")


@pytest.mark.points(1)
def test_layernorm_eps(impl):
    """eps is added to the variance inside the square root; its default is 1e-5."""
    x = randn(2, 6, seed=9, scale=0.1)  # variance ~0.01: eps = 0.1 changes the result a lot
    unit = {"weight": torch.ones(6, dtype=torch.float64), "bias": torch.zeros(6, dtype=torch.float64)}
    close(run(impl, LN, 6, x, state=unit, eps=0.1).output, ln_expected(x, eps=0.1),
          "LayerNorm(6, eps=0.1) on inputs of variance ~0.01 (eps inside the sqrt, added to the variance)")
    tiny = randn(2, 6, seed=10, scale=3e-3)  # variance ~1e-5: the default eps matters
    close(run(impl, LN, 6, tiny, state=unit).output, ln_expected(tiny, eps=1e-5),
          "LayerNorm(6) with the default eps on inputs of variance ~1e-5 (is the default eps 1e-5?)")


@pytest.mark.points(1)
def test_layernorm_biased_variance(impl):
    """The variance is the biased one, mean((x - mean)^2), as in nn.LayerNorm (not divided by d - 1)."""
    x = torch.tensor([[1.0, 2.0, 4.0, 9.0], [0.0, 0.0, 1.0, -1.0]], dtype=torch.float64)
    unit = {"weight": torch.ones(4, dtype=torch.float64), "bias": torch.zeros(4, dtype=torch.float64)}
    close(run(impl, LN, 4, x, state=unit).output, ln_expected(x),
          "LayerNorm(4) output (biased variance: divide by d, not d - 1)")


@pytest.mark.points(1)
def test_layernorm_statistics_per_token(impl):
    """Mean and variance are taken over the last dim only: each token is normalised on its own."""
    x = randn(3, 4, 8, seed=11) * torch.logspace(-1, 1, 4, dtype=torch.float64)[:, None] + torch.arange(3.0)[:, None, None]
    state = ln_state(8, seed=12)
    out = expect_tensor(run(impl, LN, 8, x, state=state).output, "LayerNorm output", shape=(3, 4, 8))
    x2 = x.clone()
    x2[0, 0] *= 100.0
    out2 = expect_tensor(run(impl, LN, 8, x2, state=state).output, "LayerNorm output", shape=(3, 4, 8))
    keep = torch.ones(3, 4, dtype=torch.bool)
    keep[0, 0] = False
    close(out2[keep], out[keep], "outputs of the other tokens after scaling token (0, 0) by 100 "
          "(they must not change: statistics over the last dim only)")
    close(out, ln_expected(x, state["weight"], state["bias"]), "LayerNorm output for tokens of different scales")


@pytest.mark.points(1)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_layernorm_keeps_dtype(impl, dtype):
    """A LayerNorm cast to ``dtype`` maps ``dtype`` inputs to ``dtype`` outputs; statistics in float32, or float64
    for float64 inputs (full float64 precision)."""
    x = randn(2, 3, 32, seed=13, scale=2.0, shift=1.0).to(dtype)
    state = ln_state(32, seed=14)
    out = run(impl, LN, 32, x, state=state, dtype=dtype).output
    out = expect_tensor(out, f"LayerNorm output for {dtype}", shape=(2, 3, 32), dtype=dtype)
    want = ln_expected(x, state["weight"].to(dtype), state["bias"].to(dtype)).to(dtype)
    assert_close(out, want, f"LayerNorm output in {dtype}")


@pytest.mark.points(1)
def test_layernorm_float16_large_values(impl):
    """float16 inputs of size ~300 are normalised correctly: squares overflow float16 (max 65504), so compute
    the statistics in float32 and cast the result back."""
    x = randn(2, 4, 16, seed=15, scale=300.0).half()
    state = ln_state(16, seed=16)
    out = expect_tensor(run(impl, LN, 16, x, state=state, dtype=torch.float16).output, "LayerNorm float16 output",
                        shape=(2, 4, 16), dtype=torch.float16)
    assert_finite(out, "LayerNorm output for float16 inputs of size ~300")
    want = ln_expected(x, state["weight"].half(), state["bias"].half()).half()
    close(out, want, "LayerNorm output for float16 inputs of size ~300")


@pytest.mark.points(1)
def test_layernorm_leading_dims_and_one_token(impl):
    """Inputs (d,), (1, d), (1, 1, d) and (2, 3, 4, d) all work: only the last dim is normalised."""
    state = ln_state(6, seed=17)
    for shape in ((6,), (1, 6), (1, 1, 6), (2, 3, 4, 6)):
        x = randn(*shape, seed=18, shift=0.3)
        out = expect_tensor(run(impl, LN, 6, x, state=state).output, f"LayerNorm output for input {shape}", shape=shape)
        close(out, ln_expected(x, state["weight"], state["bias"]), f"LayerNorm output for input {shape}")


# --- RMSNorm -------------------------------------------------------------------------------------------------

@pytest.mark.points(1)
def test_rmsnorm_parameters_and_init(impl):
    """RMSNorm(d) holds one parameter, ``weight`` (d,), initialised to ones; no bias."""
    shapes = impl.param_shapes(RMS, (6,))
    assert shapes == {"weight": (6,)}, f"parameters of RMSNorm(6): expected {{'weight': (6,)}}, got {shapes}"
    x = randn(2, 3, 6, seed=20, shift=1.0)
    res = run(impl, RMS, 6, x, return_state=True)
    close((res.state_dict or {}).get("weight"), torch.ones(6, dtype=torch.float64), "initial weight")
    close(res.output, rms_expected(x), "output of a fresh RMSNorm(6)")


@pytest.mark.points(2)
def test_rmsnorm_matches_pytorch(impl):
    """y = x / sqrt(mean(x^2) + eps) * weight over the last dim equals nn.RMSNorm(eps=1e-6) (float64)."""
    x = randn(2, 5, 16, seed=21, scale=2.0)
    w = weights(16, 22, shift=1.0)
    out = expect_tensor(run(impl, RMS, 16, x, state={"weight": w}).output, "RMSNorm output", shape=(2, 5, 16))
    close(out, rms_expected(x, w), "RMSNorm output")


@pytest.mark.points(2)
def test_rmsnorm_gradients(impl):
    """Gradients w.r.t. the input and weight equal those of nn.RMSNorm (float64)."""
    x = randn(3, 4, 8, seed=23, scale=1.5, shift=0.5)
    w = weights(8, 24, shift=1.0)
    g = randn(3, 4, 8, seed=25)
    res = run(impl, RMS, 8, x, state={"weight": w}, backward=g)
    xl, wl = x.clone().requires_grad_(), w.clone().requires_grad_()
    rms_expected(xl, wl).backward(g)
    got_x = res.input_grads[0] if res.input_grads else None
    assert got_x is not None, "no gradient reached the input: is the output detached?"
    close(got_x, xl.grad, "gradient w.r.t. the input")
    assert res.param_grads.get("weight") is not None, "no gradient reached weight: is it used?"
    close(res.param_grads["weight"], wl.grad, "gradient w.r.t. weight")


@pytest.mark.points(1)
def test_rmsnorm_does_not_subtract_the_mean(impl):
    """RMSNorm only rescales: inputs with a large mean keep it (no mean subtraction, unlike LayerNorm)."""
    x = randn(2, 3, 8, seed=26, shift=4.0)
    out = run(impl, RMS, 8, x, state={"weight": torch.ones(8, dtype=torch.float64)}).output
    out = expect_tensor(out, "RMSNorm output", shape=(2, 3, 8))
    assert bool((out.mean(-1) > 0.5).all()), \
        "RMSNorm outputs of inputs with mean ~4 have mean ~0: RMSNorm must not subtract the mean"
    close(out, rms_expected(x), "RMSNorm output for inputs with mean ~4")


@pytest.mark.points(1)
def test_rmsnorm_eps(impl):
    """eps is added to mean(x^2) inside the square root; its default is 1e-6."""
    x = randn(2, 6, seed=27, scale=0.1)
    unit = {"weight": torch.ones(6, dtype=torch.float64)}
    close(run(impl, RMS, 6, x, state=unit, eps=0.1).output, rms_expected(x, eps=0.1),
          "RMSNorm(6, eps=0.1) on inputs with mean(x^2) ~0.01")
    tiny = randn(2, 6, seed=28, scale=1e-3)  # mean(x^2) ~1e-6: the default eps matters
    close(run(impl, RMS, 6, tiny, state=unit).output, rms_expected(tiny, eps=1e-6),
          "RMSNorm(6) with the default eps on inputs with mean(x^2) ~1e-6 (is the default eps 1e-6?)")


@pytest.mark.points(1)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_rmsnorm_keeps_dtype(impl, dtype):
    """An RMSNorm cast to ``dtype`` maps ``dtype`` inputs to ``dtype`` outputs; statistics in float32, or float64
    for float64 inputs (full float64 precision)."""
    x = randn(2, 3, 32, seed=29, scale=2.0).to(dtype)
    w = weights(32, 30, shift=1.0)
    out = run(impl, RMS, 32, x, state={"weight": w}, dtype=dtype).output
    out = expect_tensor(out, f"RMSNorm output for {dtype}", shape=(2, 3, 32), dtype=dtype)
    assert_close(out, rms_expected(x, w.to(dtype)).to(dtype), f"RMSNorm output in {dtype}")


@pytest.mark.points(1)
def test_rmsnorm_float16_large_values(impl):
    """float16 inputs of size ~300 are normalised correctly: x^2 overflows float16 (max 65504), so compute
    mean(x^2) in float32 and cast the result back."""
    x = randn(2, 4, 16, seed=31, scale=300.0).half()
    w = weights(16, 32, shift=1.0)
    out = expect_tensor(run(impl, RMS, 16, x, state={"weight": w}, dtype=torch.float16).output,
                        "RMSNorm float16 output", shape=(2, 4, 16), dtype=torch.float16)
    assert_finite(out, "RMSNorm output for float16 inputs of size ~300")
    close(out, rms_expected(x, w.half()).half(), "RMSNorm output for float16 inputs of size ~300")


@pytest.mark.points(1)
def test_rmsnorm_leading_dims_and_one_token(impl):
    """Inputs (d,), (1, d), (1, 1, d) and (2, 3, 4, d) all work: only the last dim is normalised."""
    w = weights(6, 33, shift=1.0)
    for shape in ((6,), (1, 6), (1, 1, 6), (2, 3, 4, 6)):
        x = randn(*shape, seed=34, shift=0.3)
        out = expect_tensor(run(impl, RMS, 6, x, state={"weight": w}).output, f"RMSNorm output for input {shape}",
                            shape=shape)
        close(out, rms_expected(x, w), f"RMSNorm output for input {shape}")
