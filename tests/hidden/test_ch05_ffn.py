"""Hidden suite, chapter 5: the position-wise FFN, SwiGLU and the encoder block that combines them.

Interface: ``FeedForward(d_model, d_ff, *, activation="relu", dropout=0.0, bias=True)`` (``fc1``, ``act``,
``dropout``, ``fc2``), ``SwiGLU(d_model, d_ff, *, dropout=0.0, bias=False)`` (``fc1`` holds [W_gate; W_up]
stacked, ``dropout``, ``fc2``) and ``EncoderBlock(d_model, n_heads, d_ff, *, dropout=0.0, ffn="relu",
norm="layernorm", norm_first=True, bias=True, eps=1e-5)`` with sub-modules ``norm1``, ``attn`` (the chapter 4
``MultiHeadAttention``), ``norm2``, ``ffn``, ``dropout1``, ``dropout2``; ``forward(x, mask=None, *,
is_causal=False, cache=None, rope=None)`` with masks True = may attend. (The package's optional ``"gelu_tanh"``
activation is not part of the exercise and is not graded.)

One idea per test. The FFN formulas are graded against ``torch.nn.functional`` in float64 by a few tests; the
tests of the other ideas (positions, leading axes, dtypes, gradients, dropout) compare an FFN with itself under
a property that holds whatever formula it computes, on weights of its own parameter shapes, and check that its
output depends on its weights (so returning the input earns nothing). The block is graded against the
reference block *with the implementation's own FFN* in place of the reference FFN (the grader runs the
reference norms and attention, and asks the implementation for its FFN's output on the same weights), so a
wrong FFN costs the FFN tests only; masks, causal attention and the cache are checked as properties of the
block's own outputs. Dropout is checked by structure: with weights chosen so that every dropped unit shows,
the grader decodes which units were kept, how they were rescaled and which tensor was dropped.
"""
from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F

from tfmcourse.blocks import EncoderBlock as RefEncoderBlock
from tfmcourse.ffn import FeedForward as RefFeedForward
from tfmcourse.ffn import SwiGLU as RefSwiGLU
from tfmcourse.grading.checks import assert_close, expect_tensor
from tfmcourse.grading.checks import assert_mixes_tokens as assert_mixes
from tfmcourse.grading.impl import ModuleResult, Ref, attr, call, obj_spec
from tfmcourse.grading.wire import InterfaceError, MissingName, StudentError

pytestmark = [pytest.mark.ch05]
FFN, SWIGLU, BLOCK = "FeedForward", "SwiGLU", "EncoderBlock"
D, H, DFF, T = 16, 4, 32, 6  # block sizes: width, heads, FFN width, tokens
F64 = torch.float64

# (a requirement as the exercise states it, [the tests that exercise it])
REQUIREMENTS: list[tuple[str, list[str]]] = [
    ("FeedForward: fc1 = nn.Linear(d_model, d_ff, bias=bias), fc2 = nn.Linear(d_ff, d_model, bias=bias)",
     ["test_ffn_parameters"]),
    ("FFN(x) = fc2(act(fc1(x))) with ReLU for activation=\"relu\" (the default)", ["test_ffn_relu"]),
    ("activation=\"gelu\" is the exact GELU, nn.GELU() (not the tanh approximation)", ["test_ffn_gelu"]),
    ("bias=False: no bias in fc1 or fc2", ["test_ffn_parameters", "test_ffn_without_bias"]),
    ("any other activation raises ValueError naming the allowed ones", ["test_ffn_rejects_unknown_activation"]),
    (("SwiGLU: fc1 = nn.Linear(d_model, 2 * d_ff) holding [W_gate; W_up], fc2 = nn.Linear(d_ff, d_model); no biases "
      "by default, biases everywhere with bias=True"), ["test_swiglu_parameters", "test_swiglu_with_bias"]),
    ("SwiGLU(x) = fc2(silu(x W_gate) * (x W_up)) with F.silu", ["test_swiglu_values"]),
    ("the gate is the first d_ff outputs of fc1 (fc1(x).chunk(2, dim=-1))", ["test_swiglu_gate_is_the_first_half"]),
    ("both FFNs transform each position alone, with the same weights", ["test_position_wise"]),
    ("both FFNs accept any leading axes: (d_model,), (T, d_model), (..., d_model)", ["test_leading_dims"]),
    ("a float32 or bfloat16 FFN on inputs of that dtype returns that dtype", ["test_dtypes"]),
    ("gradients reach the input and every parameter", ["test_gradients"]),
    ("dropout on the hidden activations in training mode only (eval: none; dropout=0.0: none)",
     ["test_dropout_off_in_eval_and_at_zero"]),
    (("dropout = nn.Dropout(dropout) on the hidden activations (after the activation, before fc2; SwiGLU: on the "
      "gated product), kept ones rescaled by 1/(1-p); p=1 drops all"), ["test_dropout_on_hidden_units"]),
    (("EncoderBlock sub-modules norm1, attn, norm2, ffn (names as in the reference, for every ffn/norm/bias option) "
      "and the norm_first flag"), ["test_block_submodule_names"]),
    ("pre-LN (norm_first=True, the default): x = x + dropout1(attn(norm1(x))); x = x + dropout2(ffn(norm2(x)))",
     ["test_block_pre_ln", "test_block_pre_ln_residual_is_identity"]),
    ("post-LN (norm_first=False): x = norm1(x + dropout1(attn(x))); x = norm2(x + dropout2(ffn(x)))",
     ["test_block_post_ln", "test_block_post_ln_residual_is_layernorm"]),
    ("is_causal is passed on to attention", ["test_block_causal"]),
    ("mask is passed on to attention, True = may attend: (B, 1, 1, S) padding and (T, S) masks", ["test_block_mask"]),
    ("cache and rope are passed on to attention", ["test_block_kv_cache", "test_block_rope"]),
    ("ffn=\"gelu\" and ffn=\"swiglu\" build those FFNs (activation and bias passed on)", ["test_block_ffn_kinds"]),
    ("norm=\"rmsnorm\" builds RMSNorm for both norms", ["test_block_rmsnorm"]),
    ("eps reaches both norms (an explicit 0.0 included)", ["test_block_eps_reaches_both_norms"]),
    ("bias=False: no bias anywhere in the block (attention, FFN, LayerNorms)", ["test_block_submodule_names"]),
    ("gradients reach the input and every parameter of the block", ["test_block_gradients"]),
    ("dropout only in training mode: eval mode (and dropout=0.0) is deterministic and drops nothing",
     ["test_block_dropout_off_in_eval_and_at_zero"]),
    ("dropout reaches attention (its weights) and dropout1 drops the attention sub-layer's output, both rescaled",
     ["test_block_attention_dropout"]),
    ("dropout reaches the FFN (its hidden units) and dropout2 drops the FFN sub-layer's output, both rescaled",
     ["test_block_ffn_dropout"]),
    ("post-LN: dropout1 and dropout2 act on the sub-layer outputs before the residual add (not after the norm)",
     ["test_block_post_ln_dropout"]),
    ("a float32 or bfloat16 block on inputs of that dtype returns that dtype", ["test_block_dtypes"]),
]


def close(actual, expected: torch.Tensor, what: str, **kw) -> None:
    """``assert_close`` with float64 expectations compared at rtol=1e-5, atol=1e-6: tight enough for any
    formula mistake, loose enough for an implementation that computes a float64 input in float32."""
    if expected.dtype == F64:
        kw = {"rtol": 1e-5, "atol": 1e-6, **kw}
    assert_close(actual, expected, what, **kw)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=gen(seed), dtype=F64) * scale


def weights(*shape: int, seed: int = 0, scale: float = 0.3, shift: float = 0.0) -> torch.Tensor:
    """float64 values that float32 represents exactly: ``run_module`` loads them into the module's float32
    parameters before casting the module to float64, so nothing is rounded on the way."""
    return (randn(*shape, seed=seed) * scale + shift).float().double()


def run(impl, name: str, init_args: tuple, init_kwargs: dict, state: dict | None, *args,
        dtype: torch.dtype = F64, backward=None, train: bool = False, **kwargs) -> ModuleResult:
    """Build, load ``state``, cast to ``dtype``, one ``forward(*args, **kwargs)`` (eval mode unless ``train``)."""
    return impl.run_module(name, init_args, init_kwargs, state, [call("forward", *args, **kwargs)], dtype=dtype,
                           backward=backward, train=train)


def outputs(impl, name: str, init_args: tuple, init_kwargs: dict, state: dict | None, calls: list[dict], *,
            dtype: torch.dtype = F64, **kwargs) -> list:
    return impl.run_module(name, init_args, init_kwargs, state, calls, dtype=dtype, **kwargs).outputs


def own_state(impl, name: str, init_args: tuple, init_kwargs: dict, seed: int, zero: bool = False) -> dict:
    """Random (or zero) weights for whatever parameters the implementation has: for the tests that compare
    it with itself, so that a mistake in its parameters (a missing bias, say) costs those tests nothing."""
    shapes = impl.param_shapes(name, init_args, init_kwargs)
    return {k: torch.zeros(s, dtype=F64) if zero else weights(*s, seed=seed + i) for i, (k, s) in
            enumerate(sorted(shapes.items()))}


def assert_uses_weights(a, b, what: str) -> None:
    """The anchor of the FFN tests that compare an FFN with itself: its output must change with its weights."""
    a, b = expect_tensor(a, what), expect_tensor(b, what, shape=tuple(a.shape))
    if float((a - b).abs().max()) < 1e-6:
        raise AssertionError(f"{what}: the output does not change when fc2's weights change")


def doubled_fc2(state: dict) -> dict:
    return {**state, "fc2.weight": state["fc2.weight"] * 2 + 0.5}


def check_gradients(impl, name: str, init_args: tuple, init_kwargs: dict, state: dict, x: torch.Tensor,
                    g: torch.Tensor, anchors: tuple[str, ...], **kwargs) -> None:
    """Gradients w.r.t. ``x`` and every parameter must equal central finite differences of the implementation's
    own output along a random direction per tensor (a missing gradient counts as 0, right for an unused
    parameter); the output must depend on the ``anchors`` (an implementation ignoring its weights earns nothing)."""
    res = impl.run_module(name, init_args, init_kwargs, state, [call("forward", x, **kwargs)], backward=g, dtype=F64)
    grads = {"x": res.input_grads[0] if res.input_grads else None, **res.param_grads}
    eps, dirs = 1e-6, {k: randn(*v.shape, seed=900 + i) for i, (k, v) in enumerate({"x": x, **state}.items())}
    calls = [call("forward", x + eps * dirs["x"], **kwargs), call("forward", x - eps * dirs["x"], **kwargs)]
    for key, value in state.items():
        for sign in (1, -1):
            calls += [call("load_state_dict", {**state, key: value + sign * eps * dirs[key]}),
                      call("forward", x, **kwargs)]
    outs = outputs(impl, name, init_args, init_kwargs, state, calls)
    shifted = {"x": outs[:2], **{key: outs[3 + 4 * i:6 + 4 * i:2] for i, key in enumerate(state)}}
    for key, d in dirs.items():
        plus, minus = (expect_tensor(o, "output", shape=tuple(x.shape)) for o in shifted[key])
        fd = float(((plus - minus) * g).sum()) / (2 * eps)
        if key in anchors and abs(fd) < 1e-6:
            raise AssertionError(f"the output does not depend on {key}")
        got = grads.get(key)
        if got is None:
            assert abs(fd) < 1e-6, f"no gradient reached {key}: is it detached, unused or computed under no_grad?"
            continue
        an = float((expect_tensor(got, f"gradient w.r.t. {key}", shape=tuple(d.shape)) * d).sum())
        assert abs(fd - an) <= 1e-5 * max(1.0, abs(fd)), \
            f"gradient w.r.t. {key} does not match how the output changes with {key} ({an:.6g} vs {fd:.6g} along a " \
            f"random direction)"


def check_kept(z: torch.Tensor, n: int, p: float, what: str, units: str) -> None:
    """``z`` must hold sums of distinct 2^j, j < n (the units dropout kept, when kept ones are rescaled by
    1/(1-p)), and about 1 - p of the units must be kept."""
    r = z.round()
    if float((z - r).abs().max()) > 1e-6 or float(r.min()) < 0 or float(r.max()) > 2 ** n - 1:
        raise AssertionError(f"{what}: the output is not a sum of kept {units} rescaled by 1/(1-p) = {1 / (1 - p):g}")
    kept = float(((r.long()[..., None] >> torch.arange(n)) & 1).double().mean())
    if abs(kept - (1 - p)) > 0.08:
        raise AssertionError(f"{what}: {kept:.0%} of the {units} were kept, expected about {1 - p:.0%} (dropout={p})")


# --- the FFNs' expected values -------------------------------------------------------------------------------

def ffn_state(d: int, d_ff: int, seed: int, bias: bool = True) -> dict:
    state = {"fc1.weight": weights(d_ff, d, seed=seed), "fc2.weight": weights(d, d_ff, seed=seed + 1)}
    if bias:
        state |= {"fc1.bias": weights(d_ff, seed=seed + 2), "fc2.bias": weights(d, seed=seed + 3)}
    return state


def swiglu_state(d: int, d_ff: int, seed: int, bias: bool = False) -> dict:
    return ffn_state(d, 2 * d_ff, seed, bias) | {"fc2.weight": weights(d, d_ff, seed=seed + 1)}


def ffn_expected(x: torch.Tensor, s: dict, activation: str = "relu") -> torch.Tensor:
    """fc2(act(fc1(x))) with the exact (erf) GELU of nn.GELU()."""
    act = F.relu if activation == "relu" else F.gelu
    return F.linear(act(F.linear(x, s["fc1.weight"], s.get("fc1.bias"))), s["fc2.weight"], s.get("fc2.bias"))


def swiglu_expected(x: torch.Tensor, s: dict) -> torch.Tensor:
    """fc2(silu(gate) * up) where [gate; up] = fc1(x): the first d_ff outputs of fc1 are the gate."""
    gate, up = F.linear(x, s["fc1.weight"], s.get("fc1.bias")).chunk(2, dim=-1)
    return F.linear(F.silu(gate) * up, s["fc2.weight"], s.get("fc2.bias"))


# --- FeedForward ---------------------------------------------------------------------------------------------

@pytest.mark.points(1)
def test_ffn_parameters(impl):
    """FeedForward(8, 32): fc1 is Linear(8 -> 32) and fc2 Linear(32 -> 8), with biases unless ``bias=False``."""
    want = {"fc1.weight": (32, 8), "fc1.bias": (32,), "fc2.weight": (8, 32), "fc2.bias": (8,)}
    got = impl.param_shapes(FFN, (8, 32))
    assert got == want, f"parameters of FeedForward(8, 32): expected {want}, got {got}"
    want = {"fc1.weight": (32, 8), "fc2.weight": (8, 32)}
    got = impl.param_shapes(FFN, (8, 32), {"bias": False})
    assert got == want, f"parameters of FeedForward(8, 32, bias=False): expected {want}, got {got}"


@pytest.mark.points(2)
def test_ffn_relu(impl):
    """FFN(x) = fc2(relu(fc1(x))) with the default ``activation="relu"``."""
    s, x = ffn_state(8, 32, seed=1), randn(2, 5, 8, seed=2)
    out = expect_tensor(run(impl, FFN, (8, 32), {}, s, x).output, "FeedForward output", shape=(2, 5, 8))
    close(out, ffn_expected(x, s, "relu"), "FeedForward(activation='relu') output")


@pytest.mark.points(2)
def test_ffn_gelu(impl):
    """``activation="gelu"`` uses the exact GELU, x * Phi(x), as nn.GELU() (not the tanh approximation)."""
    s, x = ffn_state(8, 32, seed=3), randn(2, 5, 8, seed=4)
    out = expect_tensor(run(impl, FFN, (8, 32), {"activation": "gelu"}, s, x).output, "FeedForward output",
                        shape=(2, 5, 8))
    close(out, ffn_expected(x, s, "gelu"), "FeedForward(activation='gelu') output")


@pytest.mark.points(1)
def test_ffn_without_bias(impl):
    """``bias=False``: neither linear layer has a bias, FFN(x) = W2 act(W1 x)."""
    s, x = ffn_state(8, 16, seed=5, bias=False), randn(3, 8, seed=6)
    out = run(impl, FFN, (8, 16), {"bias": False}, s, x).output
    close(out, ffn_expected(x, s, "relu"), "FeedForward(bias=False) output")


@pytest.mark.points(1)
def test_ffn_rejects_unknown_activation(impl):
    """``activation="tanh"`` raises ValueError naming the allowed activations; "relu" and "gelu" are accepted."""
    for ok in ("relu", "gelu"):
        impl.param_shapes(FFN, (8, 16), {"activation": ok})
    try:
        impl.run_module(FFN, (8, 16), {"activation": "tanh"}, calls=[attr("training")])
    except StudentError as e:
        assert e.type_name == "ValueError", f"FeedForward(activation='tanh') must raise ValueError, got {e.type_name}"
        assert "relu" in e.message and "gelu" in e.message, \
            f"the ValueError must name the allowed activations ('relu', 'gelu'); its message: {e.message!r}"
        return
    raise AssertionError("FeedForward(activation='tanh') must raise ValueError, but the module was built")


# --- SwiGLU --------------------------------------------------------------------------------------------------

@pytest.mark.points(1)
def test_swiglu_parameters(impl):
    """SwiGLU(8, 12): fc1 is Linear(8 -> 2*12) holding [W_gate; W_up], fc2 Linear(12 -> 8); no biases by default."""
    want = {"fc1.weight": (24, 8), "fc2.weight": (8, 12)}
    got = impl.param_shapes(SWIGLU, (8, 12))
    assert got == want, f"parameters of SwiGLU(8, 12): expected {want}, got {got}"
    want = {"fc1.weight": (24, 8), "fc1.bias": (24,), "fc2.weight": (8, 12), "fc2.bias": (8,)}
    got = impl.param_shapes(SWIGLU, (8, 12), {"bias": True})
    assert got == want, f"parameters of SwiGLU(8, 12, bias=True): expected {want}, got {got}"


@pytest.mark.points(2)
def test_swiglu_values(impl):
    """SwiGLU(x) = fc2(silu(x W_gate) * (x W_up)), where W_gate is the first half of fc1's rows."""
    s, x = swiglu_state(8, 12, seed=20), randn(2, 5, 8, seed=21)
    out = expect_tensor(run(impl, SWIGLU, (8, 12), {}, s, x).output, "SwiGLU output", shape=(2, 5, 8))
    close(out, swiglu_expected(x, s), "SwiGLU output")


@pytest.mark.points(1)
def test_swiglu_gate_is_the_first_half(impl):
    """With the first half of fc1 (the gate) at -30 for every token, silu closes the gate: the output is ~0."""
    s, x = swiglu_state(8, 12, seed=22), randn(3, 8, seed=23)
    x[:, 0] = 1.0
    s["fc1.weight"][:12] = 0.0
    s["fc1.weight"][:12, 0] = -30.0  # gate = -30 whatever the token: silu(-30) ~ -3e-12
    out = run(impl, SWIGLU, (8, 12), {}, s, x).output
    close(out, swiglu_expected(x, s), "SwiGLU output with the gate closed (silu must act on the first half of "
                                      "fc1's output, the gate, which multiplies the second half, up)")


@pytest.mark.points(1)
def test_swiglu_with_bias(impl):
    """``bias=True`` adds biases to fc1 (both halves) and fc2."""
    s, x = swiglu_state(8, 12, seed=24, bias=True), randn(2, 3, 8, seed=25)
    close(run(impl, SWIGLU, (8, 12), {"bias": True}, s, x).output, swiglu_expected(x, s),
          "SwiGLU(bias=True) output")


# --- both FFNs: properties of their own outputs ----------------------------------------------------------------

BOTH = pytest.mark.parametrize("name", [FFN, SWIGLU])


@pytest.mark.points(1)
@BOTH
def test_position_wise(impl, name):
    """Each token is transformed on its own: permuting the positions permutes the outputs the same way."""
    s = own_state(impl, name, (8, 16), {}, seed=30)
    x = randn(2, 7, 8, seed=31)
    perm = torch.randperm(7, generator=gen(32))
    out, out_p = outputs(impl, name, (8, 16), {}, s, [call("forward", x), call("forward", x[:, perm])])
    assert_uses_weights(out, run(impl, name, (8, 16), {}, doubled_fc2(s), x).output, f"{name} output")
    close(out_p, expect_tensor(out, f"{name} output", shape=(2, 7, 8))[:, perm],
          f"{name} output for permuted positions (must be the permuted output)")


@pytest.mark.points(1)
@BOTH
def test_leading_dims(impl, name):
    """Inputs (d,), (T, d) and (A, B, T, d) work and give the rows' outputs: the FFN acts on the last axis."""
    s = own_state(impl, name, (8, 16), {}, seed=33)
    x = randn(2, 3, 4, 8, seed=34)
    rows = x.reshape(24, 8)
    outs = outputs(impl, name, (8, 16), {}, s, [call("forward", rows), call("forward", x),
                                                call("forward", x[0, 0]), call("forward", x[0, 0, 0])])
    assert_uses_weights(outs[0], outputs(impl, name, (8, 16), {}, doubled_fc2(s), [call("forward", rows)])[0],
                        f"{name} output")
    want = expect_tensor(outs[0], f"{name} output for (24, 8) rows", shape=(24, 8)).reshape(2, 3, 4, 8)
    close(outs[1], want, f"{name} output for a (2, 3, 4, 8) input")
    close(outs[2], want[0, 0], f"{name} output for a (4, 8) input")
    close(outs[3], want[0, 0, 0], f"{name} output for one token, an (8,) input")


@pytest.mark.points(1)
@BOTH
def test_dtypes(impl, name):
    """A float32 or bfloat16 FFN returns that dtype, close to the float64 result.

    Compared with the float64 output on the same (rounded) weights and inputs, within that dtype's precision."""
    s, x = own_state(impl, name, (8, 16), {}, seed=36), randn(2, 4, 8, seed=37)
    for dtype, tol in ((torch.float32, (1e-4, 1e-5)), (torch.bfloat16, (3e-2, 3e-2))):
        sd, xd = {k: v.to(dtype) for k, v in s.items()}, x.to(dtype)
        s64 = {k: v.double() for k, v in sd.items()}
        want, other = (run(impl, name, (8, 16), {}, st, xd.double()).output for st in (s64, doubled_fc2(s64)))
        assert_uses_weights(want, other, f"{name} output")
        out = expect_tensor(run(impl, name, (8, 16), {}, sd, xd, dtype=dtype).output, f"{dtype} {name} output",
                            shape=(2, 4, 8), dtype=dtype)
        assert_close(out, want.to(dtype), f"{dtype} {name} output vs the float64 output", rtol=tol[0], atol=tol[1])


@pytest.mark.points(2)
@BOTH
def test_gradients(impl, name):
    """Gradients reach the input and every parameter and equal finite differences of the FFN's own output."""
    kw = {"activation": "gelu"} if name == FFN else {"bias": True}  # GELU: smooth, no kink near a difference step
    s, x, g = own_state(impl, name, (8, 16), kw, seed=38), randn(2, 3, 8, seed=39), randn(2, 3, 8, seed=40)
    check_gradients(impl, name, (8, 16), kw, s, x, g, anchors=("fc1.weight", "fc2.weight"))


@pytest.mark.points(1)
@BOTH
def test_dropout_off_in_eval_and_at_zero(impl, name):
    """No dropout in eval mode (dropout=0.5 gives the dropout=0.0 output), nor with dropout=0.0 in training mode."""
    s, x = own_state(impl, name, (8, 16), {}, seed=41), randn(2, 4, 8, seed=42)
    base = run(impl, name, (8, 16), {"dropout": 0.0}, s, x).output
    assert_uses_weights(base, run(impl, name, (8, 16), {"dropout": 0.0}, doubled_fc2(s), x).output, f"{name} output")
    close(run(impl, name, (8, 16), {"dropout": 0.5}, s, x).output, base,
          f"{name}(dropout=0.5) in eval mode (no dropout may be applied)")
    close(run(impl, name, (8, 16), {"dropout": 0.0}, s, x, train=True).output, base,
          f"{name}(dropout=0.0) in training mode (nothing may be dropped)")


def calibrated_fc2(impl, name: str, init_args: tuple, init_kwargs: dict, state: dict, x: torch.Tensor, key: str,
                   read) -> dict:
    """``state`` with fc2 (``state[key]``) set so that hidden unit j adds exactly 2^j to every output channel: each
    unit's eval-mode activation h_j is measured first (fc2 = the one-hot column j; ``read`` picks it from the
    output), then fc2[:, j] = 2^j / h_j. The dropout probes then work whatever activation the FFN computes."""
    n, calls = state[key].shape[1], []
    for j in range(n):
        w = torch.zeros_like(state[key])
        w[:, j] = 1.0
        calls += [call("load_state_dict", {**state, key: w}), call("forward", x)]
    outs = outputs(impl, name, init_args, init_kwargs, state, calls)
    h = torch.stack([read(expect_tensor(o, "output", shape=tuple(x.shape))) for o in outs[1::2]])
    if float(h.abs().min()) < 1e-3:
        raise AssertionError(f"{name}: a hidden unit is 0 for an input that makes every pre-activation positive")
    return {**state, key: (2.0 ** torch.arange(n, dtype=F64) / h).expand(state[key].shape).clone()}


def hidden_probe(impl, name: str) -> tuple[dict, torch.Tensor]:
    """Weights (d_model 8, d_ff 8, biases zero) and input (the same hidden activations for every token) under which
    hidden unit j adds exactly 2^j to every output channel: in training the output times (1 - p) is then the sum of
    2^j over the units dropout kept, the same in every channel."""
    kw = PROBE_KW[name]
    s = own_state(impl, name, (8, 8), kw, seed=0, zero=True)
    x = randn(8, 16, 8, seed=43)
    x[..., 0] = 1.0
    s["fc1.weight"][:, 0] = 1.0 + torch.arange(s["fc1.weight"].shape[0], dtype=F64) % 8  # positive pre-activations
    return calibrated_fc2(impl, name, (8, 8), kw, s, x[:1, :1], "fc2.weight", lambda o: o[0, 0, 0]), x


# GELU, not ReLU: relu(dropout(h)) = dropout(relu(h)), so only a curved activation shows dropout placed before it
PROBE_KW = {FFN: {"activation": "gelu"}, SWIGLU: {}}


@pytest.mark.points(1)
@BOTH
def test_dropout_on_hidden_units(impl, name):
    """dropout drops hidden activations (after the activation), rescales kept ones by 1/(1-p); p=1 drops all.

    dropout=0.25 in training: one draw per token and unit, shared by all output channels; about 75% kept."""
    s, x = hidden_probe(impl, name)
    kw, what = PROBE_KW[name], f"{name}(dropout=0.25) in training mode"
    y = expect_tensor(run(impl, name, (8, 8), kw | {"dropout": 0.25}, s, x, train=True).output, what, shape=(8, 16, 8))
    z = y * 0.75
    if torch.allclose(z, torch.full_like(z, 255 * 0.75)):
        raise AssertionError(f"{what}: no hidden unit was dropped")
    if float((z - z[..., :1]).abs().max()) > 1e-6:
        raise AssertionError(f"{what}: output channels were dropped separately; dropout acts on the hidden "
                             f"activations (before fc2), not on the output")
    check_kept(z[..., 0], 8, 0.25, what, "hidden units")
    y = run(impl, name, (8, 8), kw | {"dropout": 1.0}, s, x, train=True).output
    close(y, torch.zeros(8, 16, 8, dtype=F64), f"{name}(dropout=1.0) in training mode (every hidden unit dropped)")


# --- EncoderBlock: helpers ---------------------------------------------------------------------------------------

def block_state(impl, kw: dict, seed: int, d_ff: int = DFF) -> dict:
    """Random weights: norms, attention as in the reference block (norm gains near 1); the FFN's parameters as the
    implementation's block has them (so a mistake inside the FFN, e.g. a missing bias, changes nothing here)."""
    ref = RefEncoderBlock(D, H, d_ff, **kw).state_dict()
    state = {k: weights(*v.shape, seed=seed + i, shift=1.0 if k.startswith("norm") and k.endswith("weight") else 0.0)
             for i, (k, v) in enumerate(ref.items()) if not k.startswith("ffn.")}
    ffn = {k: weights(*s, seed=seed + 50 + i) for i, (k, s) in
           enumerate(sorted(impl.param_shapes(BLOCK, (D, H, d_ff), kw).items())) if k.startswith("ffn.")}
    return state | ffn


def own_ffn(impl, kw: dict, state: dict, u: torch.Tensor, d_ff: int = DFF) -> torch.Tensor:
    """The implementation's own FFN of the block's kind, with the block's FFN weights, on ``u`` (eval mode); the
    reference FFN if the implementation's cannot run them."""
    kind, bias = kw.get("ffn", "relu"), kw.get("bias", True)
    name, init = (SWIGLU, {"bias": bias}) if kind == "swiglu" else (FFN, {"activation": kind, "bias": bias})
    sub = {k[len("ffn."):]: v for k, v in state.items() if k.startswith("ffn.")}
    try:
        return expect_tensor(run(impl, name, (D, d_ff), init, sub, u).output, f"{name} output", shape=tuple(u.shape))
    except (StudentError, MissingName, InterfaceError, AssertionError):
        ref = (RefSwiGLU(D, d_ff, **init) if kind == "swiglu" else RefFeedForward(D, d_ff, **init)).double().eval()
        try:
            ref.load_state_dict(sub)
        except RuntimeError as e:
            raise AssertionError(f"the block's FFN parameters {sorted(sub)} do not fit {name}(d_model, d_ff, "
                                 f"**{init}): is ffn built as the exercise says?") from e
        with torch.no_grad():
            return ref(u)


def block_expected(impl, kw: dict, state: dict, x: torch.Tensor, *, d_ff: int = DFF) -> torch.Tensor:
    """The reference block's output, computed here from its norms and attention, with the implementation's own FFN
    (asked for its output on the same weights) in place of the reference FFN."""
    ref = RefEncoderBlock(D, H, d_ff, **kw).double().eval()
    ref.load_state_dict({k: v for k, v in state.items() if not k.startswith("ffn.")}, strict=False)
    with torch.no_grad():
        if kw.get("norm_first", True):
            h = x + ref.attn(ref.norm1(x))
            return h + own_ffn(impl, kw, state, ref.norm2(h), d_ff)
        h = ref.norm1(x + ref.attn(x))
        return ref.norm2(h + own_ffn(impl, kw, state, h, d_ff))


def block_run(impl, kw: dict, state: dict, calls: list[dict], **kwargs) -> list:
    return outputs(impl, BLOCK, (D, H, DFF), kw, state, calls, **kwargs)


def changed_first(x: torch.Tensor) -> torch.Tensor:
    out = x.clone()
    out[:, 0] = randn(x.size(0), x.size(-1), seed=999)
    return out


def block_input(B: int = 3, seed: int = 50) -> torch.Tensor:
    return randn(B, T, D, seed=seed)


# --- EncoderBlock: structure ---------------------------------------------------------------------------------------

@pytest.mark.points(1)
def test_block_submodule_names(impl):
    """The block's parameters are named as in the reference for every option; norm_first holds the flag.

    norm1, attn.qkv, attn.proj, norm2 and ffn (your FFN of the kind asked for); bias=False leaves no bias anywhere."""
    for kw in ({}, {"bias": False}, {"norm": "rmsnorm", "ffn": "swiglu", "bias": False}, {"ffn": "gelu"}):
        ffn_name = SWIGLU if kw.get("ffn") == "swiglu" else FFN  # ffn.*: as the implementation's own FFN has them
        own = impl.state_dict_keys(ffn_name, (D, DFF), {"bias": kw.get("bias", True)})
        want = sorted([k for k in RefEncoderBlock(D, H, DFF, **kw).state_dict() if not k.startswith("ffn.")] +
                      [f"ffn.{k}" for k in own])
        got = impl.state_dict_keys(BLOCK, (D, H, DFF), kw)
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        assert not missing and not extra, \
            f"EncoderBlock({D}, {H}, {DFF}, **{kw}) state dict: missing {missing}, unexpected {extra}"
    flags = [outputs(impl, BLOCK, (D, H, DFF), kw, None, [attr("norm_first")], dtype=None)[0]
             for kw in ({}, {"norm_first": False})]
    assert flags == [True, False], f"norm_first must hold the flag (default True); got {flags}"


@pytest.mark.points(2)
def test_block_pre_ln(impl):
    """Pre-LN (the default): x = x + attn(norm1(x)); x = x + ffn(norm2(x)).

    Compared with the reference block's norms and attention, with your FFN."""
    state, x = block_state(impl, {}, seed=100), block_input(seed=101)
    out = expect_tensor(block_run(impl, {}, state, [call("forward", x)])[0], "EncoderBlock output", shape=(3, T, D),
                        dtype=F64)
    close(out, block_expected(impl, {}, state, x), "pre-LN EncoderBlock output (is it x = x + attn(norm1(x)); "
                                                   "x = x + ffn(norm2(x))?)")


@pytest.mark.points(2)
def test_block_post_ln(impl):
    """Post-LN (norm_first=False): x = norm1(x + attn(x)); x = norm2(x + ffn(x)).

    Compared with the reference block's norms and attention, with your FFN."""
    kw = {"norm_first": False}
    state, x = block_state(impl, kw, seed=110), block_input(seed=111)
    out = expect_tensor(block_run(impl, kw, state, [call("forward", x)])[0], "EncoderBlock output", shape=(3, T, D))
    close(out, block_expected(impl, kw, state, x), "post-LN EncoderBlock output (is it x = norm1(x + attn(x)); "
                                                   "x = norm2(x + ffn(x))?)")


def with_zero_sublayers(state: dict) -> dict:
    """``state`` with the attention and FFN output projections (and their biases) zeroed: both sub-layers output 0."""
    return {k: torch.zeros_like(v) if k.startswith(("attn.proj.", "ffn.fc2.")) else v for k, v in state.items()}


@pytest.mark.points(1)
def test_block_pre_ln_residual_is_identity(impl):
    """Pre-LN keeps the residual stream: with both sub-layers' outputs zeroed the block is the identity.

    (And with them on, it is not.)"""
    state = block_state(impl, {}, seed=120)
    x = block_input(2, seed=121) * 5.0
    out = block_run(impl, {}, with_zero_sublayers(state), [call("forward", x)])[0]
    close(out, x, "pre-LN EncoderBlock output with zeroed sub-layer outputs (the residual stream x itself)")
    on = expect_tensor(block_run(impl, {}, state, [call("forward", x)])[0], "output", shape=tuple(x.shape))
    assert float((on - x).abs().max()) > 1e-3, "the block returns its input unchanged when its sub-layers are on"


@pytest.mark.points(1)
def test_block_post_ln_residual_is_layernorm(impl):
    """Post-LN, LN(x + Sublayer(x)): with the output projections zeroed the block gives norm2(norm1(x))."""
    kw = {"norm_first": False}
    state = with_zero_sublayers(block_state(impl, kw, seed=130))
    x = block_input(2, seed=131) * 5.0 + 2.0
    out = block_run(impl, kw, state, [call("forward", x)])[0]
    h = F.layer_norm(x, (D,), state["norm1.weight"], state["norm1.bias"], 1e-5)
    want = F.layer_norm(h, (D,), state["norm2.weight"], state["norm2.bias"], 1e-5)
    close(out, want, "post-LN EncoderBlock output with zeroed sub-layer outputs (norm2(norm1(x)))")


@pytest.mark.points(1)
def test_block_ffn_kinds(impl):
    """ffn="gelu" and ffn="swiglu" build those FFNs, with the block's bias.

    The block equals the reference block with your FFN of that kind."""
    x = block_input(2, seed=141)
    for i, kw in enumerate(({"ffn": "gelu"}, {"ffn": "swiglu"})):
        state = block_state(impl, kw, seed=140 + 10 * i)
        out = block_run(impl, kw, state, [call("forward", x)])[0]
        close(out, block_expected(impl, kw, state, x), f"EncoderBlock(ffn={kw['ffn']!r}) output")


@pytest.mark.points(1)
def test_block_rmsnorm(impl):
    """``norm="rmsnorm"`` makes both norms RMSNorm."""
    kw, x = {"norm": "rmsnorm"}, block_input(2, seed=161)
    state = block_state(impl, kw, seed=160)
    out = block_run(impl, kw, state, [call("forward", x)])[0]
    close(out, block_expected(impl, kw, state, x), "EncoderBlock(norm='rmsnorm') output")


@pytest.mark.points(1)
def test_block_eps_reaches_both_norms(impl):
    """eps reaches both norms: eps=0.1 (LayerNorm) and an explicit eps=0.0 (RMSNorm).

    On small inputs, where eps matters."""
    x = block_input(2, seed=171) * 0.05
    for i, kw in enumerate(({"eps": 0.1}, {"norm": "rmsnorm", "eps": 0.0})):
        state = block_state(impl, kw, seed=170 + 10 * i)
        out = block_run(impl, kw, state, [call("forward", x)])[0]
        close(out, block_expected(impl, kw, state, x), f"EncoderBlock(**{kw}) output on small inputs (is eps passed "
                                                       f"to both norms?)")


# --- EncoderBlock: what forward passes on to attention -----------------------------------------------------------

@pytest.mark.points(1)
def test_block_causal(impl):
    """``is_causal=True`` reaches attention: the block's output at token t equals its output for x[:, :t+1] at t."""
    state, x = block_state(impl, {}, seed=200), block_input(2, seed=201)
    outs = block_run(impl, {}, state, [call("forward", x, is_causal=True), call("forward", changed_first(x)),
                                       *[call("forward", x[:, :t + 1]) for t in range(T)]])
    assert_mixes(outs[-1], outs[1], "EncoderBlock output")
    want = torch.stack([expect_tensor(o, "output", shape=(2, t + 1, D))[:, t] for t, o in enumerate(outs[2:])], dim=1)
    close(outs[0], want, "EncoderBlock output with is_causal=True (token t sees tokens 0..t: the output for "
                         "x[:, :t+1] at t)")


@pytest.mark.points(1)
def test_block_mask(impl):
    """mask reaches attention, True = may attend: padded or hidden keys act as if absent.

    With a (B, 1, 1, S) padding mask the real tokens get the output of the real tokens alone; a (T, S) mask hiding
    the last keys equals dropping those tokens."""
    state, x, lengths = block_state(impl, {}, seed=210), block_input(3, seed=211), [T, 4, 2]
    keep = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    hide_last = torch.ones(T, T, dtype=torch.bool)
    hide_last[:, 4:] = False
    outs = block_run(impl, {}, state, [call("forward", x, keep[:, None, None, :]), call("forward", x, hide_last),
                                       call("forward", x[:, :4]), call("forward", x), call("forward", changed_first(x)),
                                       *[call("forward", x[b:b + 1, :n]) for b, n in enumerate(lengths)]])
    assert_mixes(outs[3], outs[4], "EncoderBlock output")
    got = expect_tensor(outs[0], "EncoderBlock output with a padding mask", shape=(3, T, D))
    for b, n in enumerate(lengths):
        close(got[b, :n], expect_tensor(outs[5 + b], "output", shape=(1, n, D))[0],
              f"sequence {b} with {n} real tokens and a (B, 1, 1, S) padding mask (True = may attend): must equal the "
              f"output for its real tokens alone")
    close(expect_tensor(outs[1], "output with a (T, S) mask", shape=(3, T, D))[:, :4], outs[2],
          "output with a (T, S) mask that hides keys 4 and 5 from every query (must equal the output for x[:, :4])")


def cached_steps(x: torch.Tensor, **kwargs) -> list[dict]:
    """Calls feeding the tokens of ``x`` one at a time through the scenario's KVCache (as in generation)."""
    return [call("forward", x[:, t:t + 1], is_causal=True, cache=Ref("cache"), **kwargs) for t in range(x.size(1))]


def prefix_calls(x: torch.Tensor, **kwargs) -> list[dict]:
    """Calls running the block on every prefix x[:, :t+1]: its output at t is what token t gets with a cache."""
    return [call("forward", x[:, :t + 1], **kwargs) for t in range(x.size(1))]


def check_steps(steps: list, prefixes: list, what: str) -> None:
    for t, (got, full) in enumerate(zip(steps, prefixes)):
        got = expect_tensor(got, f"output for token {t}", shape=(2, 1, D))
        close(got[:, 0], expect_tensor(full, "output", shape=(2, t + 1, D))[:, t], f"output for token {t} {what}")


@pytest.mark.points(1)
def test_block_kv_cache(impl):
    """cache reaches attention: tokens fed one at a time through a KVCache get the output for their prefix."""
    state, x = block_state(impl, {}, seed=220), randn(2, 6, D, seed=221)
    outs = block_run(impl, {}, state, [*cached_steps(x), *prefix_calls(x), call("forward", changed_first(x))],
                     objects={"cache": obj_spec("KVCache")})
    assert_mixes(outs[11], outs[12], "EncoderBlock output")
    check_steps(outs[:6], outs[6:12], "through the cache (pass cache on to self.attn)")


def need_rope(impl) -> None:
    """The rope test builds a RotaryEmbedding inside the implementation (the notebook imports it, as the answer
    cell does); the in-process reference namespace holds only interface names, so it gets the reference's."""
    ns = getattr(impl, "ns", None)
    if isinstance(ns, dict) and "RotaryEmbedding" not in ns and ns.get(BLOCK) is RefEncoderBlock:
        ns["RotaryEmbedding"] = importlib.import_module("tfmcourse.embedding").RotaryEmbedding


@pytest.mark.points(1)
def test_block_rope(impl):
    """rope reaches attention: it changes the output, and with a KVCache tokens are rotated at their positions.

    Token t fed through the cache with rope gets the block's output with rope on x[:, :t+1] at t."""
    state, x = block_state(impl, {}, seed=230), randn(2, 6, D, seed=231)
    need_rope(impl)
    rope = {"rope": Ref("rope")}
    try:
        outs = block_run(impl, {}, state, [call("double", target="rope"), call("forward", x),
                                           *cached_steps(x, **rope), *prefix_calls(x, **rope)],
                         objects={"rope": obj_spec("RotaryEmbedding", D // H, 32), "cache": obj_spec("KVCache")})
    except MissingName as e:
        if "RotaryEmbedding" in str(e):
            raise AssertionError("RotaryEmbedding is not in the notebook: this test builds one with it (keep "
                                 "`from tfmcourse.embedding import RotaryEmbedding` in the EncoderBlock cell)") from None
        raise
    plain = expect_tensor(outs[1], "output", shape=(2, 6, D))
    got = expect_tensor(outs[-1], "output with rope", shape=(2, 6, D))
    assert float((got - plain).abs().max()) > 1e-6, "rope changes nothing: pass rope on to self.attn"
    check_steps(outs[2:8], outs[8:14], "through the cache with rope (pass cache and rope on to self.attn)")


# --- EncoderBlock: gradients, dtypes, dropout -----------------------------------------------------------------

@pytest.mark.points(2)
def test_block_gradients(impl):
    """Gradients reach the input and every parameter and match finite differences of the block's output.

    Pre-LN, GELU FFN, causal."""
    kw = {"ffn": "gelu"}
    state, x, g = block_state(impl, kw, seed=300), block_input(2, seed=301), randn(2, T, D, seed=302)
    check_gradients(impl, BLOCK, (D, H, DFF), kw, state, x, g, anchors=("attn.qkv.weight", "ffn.fc1.weight"),
                    is_causal=True)


@pytest.mark.points(1)
def test_block_dtypes(impl):
    """A float32 or bfloat16 block returns that dtype, close to the float64 result.

    Compared with the float64 output on the same (rounded) weights and inputs, within that dtype's precision."""
    state, x = block_state(impl, {}, seed=310), block_input(2, seed=311)
    for dtype, tol in ((torch.float32, (1e-4, 1e-5)), (torch.bfloat16, (5e-2, 5e-2))):
        sd, xd = {k: v.to(dtype) for k, v in state.items()}, x.to(dtype)
        want = block_run(impl, {}, {k: v.double() for k, v in sd.items()},
                         [call("forward", xd.double(), is_causal=True),
                          call("forward", changed_first(xd.double()), is_causal=True)])
        assert_mixes(want[0], want[1], "float64 EncoderBlock output")
        out = block_run(impl, {}, sd, [call("forward", xd, is_causal=True)], dtype=dtype)[0]
        out = expect_tensor(out, f"{dtype} EncoderBlock output", shape=(2, T, D), dtype=dtype)
        assert_close(out, want[0].to(dtype), f"{dtype} EncoderBlock output vs the float64 output", rtol=tol[0],
                     atol=tol[1])


@pytest.mark.points(1)
def test_block_dropout_off_in_eval_and_at_zero(impl):
    """The block drops nothing in eval mode (pre- and post-LN), nor with dropout=0.0 in training."""
    x = block_input(2, seed=321)
    for i, kw in enumerate(({}, {"norm_first": False})):
        state = block_state(impl, kw, seed=320 + 10 * i)
        base = block_run(impl, kw | {"dropout": 0.0}, state, [call("forward", x, is_causal=True),
                                                               call("forward", changed_first(x), is_causal=True)])
        assert_mixes(base[0], base[1], "EncoderBlock output")
        for p, train, what in ((0.5, False, "dropout=0.5 in eval mode"), (0.0, True, "dropout=0.0 in training mode")):
            out = block_run(impl, kw | {"dropout": p}, state, [call("forward", x, is_causal=True)], train=train)[0]
            close(out, base[0], f"EncoderBlock(**{kw}, {what}): output (no dropout may be applied)")


def layernorm_scale(eps: float = 1e-5) -> float:
    """LayerNorm (gain 1, bias 0) maps e_i - e_j (d_model = 16) to c (e_i - e_j) with this c."""
    return 1.0 / (2.0 / D + eps) ** 0.5


def unit_pairs(idx: torch.Tensor) -> torch.Tensor:
    """Tokens e_i - e_{i+8} for the indices ``idx``: after LayerNorm exactly ``layernorm_scale() * (e_i - e_{i+8})``."""
    x = torch.zeros(*idx.shape, D, dtype=F64)
    x.scatter_(-1, idx[..., None], 1.0)
    x.scatter_(-1, idx[..., None] + 8, -1.0)
    return x


def decode_sublayer_dropout(a: torch.Tensor, p: float, scale: float, what: str, sublayer: str, inner: str) -> None:
    """``a`` = block output - x, where each output channel of the sub-layer is ``scale`` times the sum of 2^j over
    the inner units (attention weights, hidden units) that dropout kept, each rescaled by 1/(1-p); the sub-layer's
    dropout then drops that channel or rescales it by 1/(1-p)."""
    zero = a.abs() < 1e-9
    frac = float(zero.double().mean())
    if frac < p / 3:
        raise AssertionError(f"{what}: the {sublayer} sub-layer's output is not dropped (dropout before the "
                             f"residual add: {'dropout1' if sublayer == 'attention' else 'dropout2'})")
    if abs(frac - p) > 0.08:
        raise AssertionError(f"{what}: {frac:.0%} of the {sublayer} sub-layer's output channels were dropped, "
                             f"expected about {p:.0%}")
    inner_sum = a[~zero] * (1 - p) / scale  # sum of 2^j / (1 - p) over the kept inner units; 255 if none dropped
    if torch.allclose(inner_sum, torch.full_like(inner_sum, 255.0), rtol=1e-9, atol=1e-9):
        raise AssertionError(f"{what}: the {inner} are not dropped: pass dropout on to "
                             f"{'MultiHeadAttention' if sublayer == 'attention' else 'the FFN'}")
    check_kept(inner_sum * (1 - p), 8, p, what, inner)


@pytest.mark.points(2)
def test_block_attention_dropout(impl):
    """dropout reaches attention's weights, and dropout1 drops the attention sub-layer's output.

    Pre-LN, training, dropout=0.25, the FFN zeroed: both rescaled by 1/(1-p), each keeping about 75%."""
    kw = {"dropout": 0.25}
    state = {k: torch.zeros_like(v) for k, v in block_state(impl, kw, seed=400).items()}
    state["norm1.weight"][:], state["norm2.weight"][:] = 1.0, 1.0
    c = layernorm_scale()
    state["attn.qkv.weight"][2 * D:, :8] = 2.0 ** torch.arange(8, dtype=F64) / c  # value of token t: 2^t, all channels
    state["attn.proj.weight"][:] = torch.eye(D, dtype=F64)
    x = unit_pairs(torch.arange(8).expand(8, 8))  # (B, T, D): token t is e_t - e_{t+8}; W_Q = W_K = 0: uniform
    y = expect_tensor(block_run(impl, kw, state, [call("forward", x)], train=True)[0], "output", shape=(8, 8, D))
    decode_sublayer_dropout(y - x, 0.25, 1 / 8, "EncoderBlock(dropout=0.25) in training mode", "attention",
                            "attention weights")


@pytest.mark.points(2)
def test_block_ffn_dropout(impl):
    """dropout reaches the FFN's hidden units, and dropout2 drops the FFN sub-layer's output.

    Pre-LN, training, dropout=0.25, attention zeroed: both rescaled by 1/(1-p), each keeping about 75%."""
    kw = {"dropout": 0.25}
    state = {k: torch.zeros_like(v) for k, v in block_state(impl, kw, seed=410, d_ff=8).items()}
    state["norm1.weight"][:], state["norm2.weight"][:] = 1.0, 1.0
    state["ffn.fc1.weight"][:, 0] = (1.0 + torch.arange(8, dtype=F64)) / layernorm_scale()  # positive pre-activations
    x = unit_pairs(torch.zeros(16, 8, dtype=torch.long))  # every token e_0 - e_8 (1024 hidden-unit draws)
    # hidden unit j adds 2^j to every output channel (calibrated on the block's own FFN in eval mode)
    state = calibrated_fc2(impl, BLOCK, (D, H, 8), {}, state, x[:1, :1], "ffn.fc2.weight",
                           lambda o: o[0, 0, 1] - x[0, 0, 1])
    y = outputs(impl, BLOCK, (D, H, 8), kw, state, [call("forward", x)], train=True)[0]
    y = expect_tensor(y, "output", shape=(16, 8, D))
    decode_sublayer_dropout(y - x, 0.25, 1.0, "EncoderBlock(dropout=0.25) in training mode", "FFN",
                            "FFN's hidden units")


@pytest.mark.points(1)
def test_block_post_ln_dropout(impl):
    """Post-LN: dropout1 and dropout2 drop the sub-layer outputs before the residual add, not after a norm.

    Training, dropout=0.25, RMSNorm: about 25% of the channels where x is 0 stay exactly 0 through the norms."""
    kw = {"dropout": 0.25, "norm": "rmsnorm", "norm_first": False}
    base = {k: torch.zeros_like(v) for k, v in block_state(impl, kw, seed=420, d_ff=8).items()}
    base["norm1.weight"][:], base["norm2.weight"][:] = 1.0, 1.0
    attn = {k: v.clone() for k, v in base.items()}  # the attention path, the FFN zeroed
    attn["attn.qkv.weight"][2 * D:, :8] = 2.0 ** torch.arange(8, dtype=F64)
    attn["attn.proj.weight"][:] = torch.eye(D, dtype=F64)
    ffn = {k: v.clone() for k, v in base.items()}  # the FFN path, attention zeroed
    ffn["ffn.fc1.weight"][:, 0] = 1.0
    ffn["ffn.fc2.weight"][:] = 1.0
    for path, state, idx, sublayer in (("attention", attn, torch.arange(8).expand(8, 8), "dropout1"),
                                       ("FFN", ffn, torch.zeros(8, 8, dtype=torch.long), "dropout2")):
        x = unit_pairs(idx)
        y = outputs(impl, BLOCK, (D, H, 8), kw, state, [call("forward", x)], train=True)[0]
        y = expect_tensor(y, "output", shape=(8, 8, D))
        free = x == 0  # channels where only the sub-layer's output contributes
        frac = float((y[free].abs() < 1e-12).double().mean())
        assert abs(frac - 0.25) <= 0.08, \
            f"post-LN EncoderBlock(dropout=0.25), {path} path: {frac:.0%} of its output channels were dropped, " \
            f"expected about 25% ({sublayer} on the sub-layer's output, before the residual add and the norm)"
