"""Hidden suite, chapter 1: token embeddings and positions (sinusoidal, learned, rotary).

Interface: ``sinusoidal_encoding(n_positions, d_model, *, base=10000.0)``,
``TokenEmbedding(vocab_size, d_model, *, scale=False)`` (parameter ``weight``),
``LearnedPositionalEmbedding(max_len, d_model)`` (parameter ``weight``, ``forward(T, offset=0)``),
``apply_rotary(x, cos, sin)`` (rotates the pairs ``(x[..., i], x[..., i + hs/2])``). Every expected value
is computed here, in the grader, from the formulas in float64 (the rotation as a complex multiplication).

One idea per test, so that one mistake costs the points of its own idea only: the formula tests compare
with the formulas; the tests of ``base=``, of dtypes, shapes and gradients of ``apply_rotary``, and of the
gradient of ``LearnedPositionalEmbedding`` compare the implementation with itself where that isolates
their idea (``base=100`` against the wider default table, bfloat16 against float64, a (T, hs) input
against the same rows in a (1, 1, T, hs) input, the gradient against the transpose of the student's own
rotation, the gradient rows against the rows the forward returned), each with a check that the
implementation does something (a stub that returns its input or zeros earns nothing).
"""
from __future__ import annotations

import math

import pytest
import torch

from tfmcourse.grading.checks import assert_close, assert_finite, expect_tensor
from tfmcourse.grading.checks import assert_close_float32_ok as close
from tfmcourse.grading.impl import attr, call

pytestmark = [pytest.mark.ch01]
SIN, TOK, LPE, ROT = "sinusoidal_encoding", "TokenEmbedding", "LearnedPositionalEmbedding", "apply_rotary"
F32_TOL = {"rtol": 1e-4, "atol": 1e-4}  # float32 angles up to ~50 rad carry ~1e-5 of rounding

REQUIREMENTS: list[tuple[str, list[str]]] = [
    ("sinusoidal_encoding(P, d) returns a (P, d) float32 table", ["test_sinusoidal_shape_and_dtype"]),
    (("PE[p, 2i] = sin(p / base^(2i/d)), PE[p, 2i+1] = cos(p / base^(2i/d)), positions from 0, sines on the even "
      "columns (interleaved)"), ["test_sinusoidal_matches_formula", "test_sinusoidal_position_zero_and_interleaving"]),
    ("base= replaces 10000", ["test_sinusoidal_base_argument"]),
    ("an odd d_model raises a ValueError", ["test_sinusoidal_odd_width_is_an_error"]),
    ("TokenEmbedding holds one parameter, weight (vocab_size, d_model)", ["test_token_embedding_parameters"]),
    ("TokenEmbedding's weight is initialised from N(0, 0.02^2)", ["test_token_embedding_initialisation"]),
    ("token id i gives row i of weight: (B, T) ids -> (B, T, d)", ["test_token_embedding_is_a_row_lookup"]),
    ("scale=True multiplies by sqrt(d_model); the default (and scale=False) does not", ["test_token_embedding_scale"]),
    ("ids of any shape: the output is ids.shape + (d,)", ["test_token_embedding_any_leading_dims"]),
    ("the lookup is differentiable: the gradient reaches weight", ["test_token_embedding_gradient"]),
    ("LearnedPositionalEmbedding holds one parameter, weight (max_len, d_model)",
     ["test_learned_positions_parameters"]),
    ("LearnedPositionalEmbedding's weight is initialised from N(0, 0.02^2)",
     ["test_learned_positions_initialisation"]),
    ("forward(T) returns rows 0 … T-1, shape (T, d), no batch axis", ["test_learned_positions_first_rows"]),
    ("forward(T, offset=k) returns rows k … k+T-1", ["test_learned_positions_offset"]),
    ("the slice is differentiable: only the rows used get a gradient", ["test_learned_positions_gradient"]),
    ("apply_rotary rotates the pairs (x[i], x[i + hs/2]) by the given angles: (x1 cos - x2 sin, x1 sin + x2 cos)",
     ["test_rotary_matches_formula", "test_rotary_pairs_are_the_two_halves",
      "test_rotary_identity_at_angle_zero_and_keeps_norm"]),
    ("rotated scores depend only on the distance between positions",
     ["test_rotary_scores_depend_on_relative_position"]),
    ("apply_rotary returns x's dtype (rotate in at least float32; float64 stays float64); cos/sin may be float32",
     ["test_rotary_keeps_dtype"]),
    ("x may be (T, hs), (B, T, hs) or (B, nh, T, hs); cos/sin (T, hs/2) or with leading axes that broadcast",
     ["test_rotary_any_leading_dims"]),
    ("gradients reach x (the output gradient rotated back)", ["test_rotary_gradient"]),
]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def expected_pe(P: int, d: int, base: float = 10000.0, first: int = 0) -> torch.Tensor:
    """PE[pos, 2i] = sin(pos / base^(2i/d)), PE[pos, 2i+1] = cos(pos / base^(2i/d)), in float64."""
    pos = torch.arange(first, first + P, dtype=torch.float64)[:, None]
    two_i = torch.arange(0, d, 2, dtype=torch.float64)
    angles = pos / base ** (two_i / d)
    pe = torch.empty(P, d, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = angles.sin(), angles.cos()
    return pe


def rope_angles(T: int, hs: int, base: float = 10000.0, first: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of the angles pos * base^(-2i/hs), each (T, hs/2), float64."""
    inv_freq = base ** (-torch.arange(0, hs, 2, dtype=torch.float64) / hs)
    angles = torch.arange(first, first + T, dtype=torch.float64)[:, None] * inv_freq
    return angles.cos(), angles.sin()


def expected_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Pair i is the complex number x[i] + j x[i + hs/2], multiplied by e^{j theta_i}."""
    h = x.size(-1) // 2
    z = torch.complex(x[..., :h].double(), x[..., h:].double())
    r = z * torch.complex(cos.double(), sin.double())
    return torch.cat((r.real, r.imag), dim=-1)


def randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=gen(seed), dtype=torch.float64).to(dtype)


def weights(*shape: int, seed: int = 0) -> torch.Tensor:
    """float64 weights that float32 represents exactly: ``run_module`` loads them into the module's float32
    parameters and only then casts the module to float64, so nothing is rounded on the way."""
    return randn(*shape, seed=seed).float().double()


def fwd(impl_, name: str, init_kwargs: dict, state: dict, *args, **kwargs):
    """Build ``name``, load ``state``, cast to float64, one forward call in eval mode."""
    calls = [call("forward", *args, **kwargs)]
    return impl_.run_module(name, (), init_kwargs, state, calls, dtype=torch.float64).output


def assert_rotates(out: torch.Tensor, x: torch.Tensor, what: str) -> None:
    """apply_rotary does something: finite, not x, lengths roughly kept (checked before comparing it with itself)."""
    assert_finite(out, what)
    assert not torch.allclose(out.double(), x.double(), atol=1e-3), f"{what}: apply_rotary returned x unchanged"
    ratio = float(out.double().norm() / x.double().norm())
    assert 0.5 < ratio < 2.0, f"{what}: a rotation keeps lengths, but the output is {ratio:.3g} times as long as x"


# --- sinusoidal_encoding -------------------------------------------------------------------------------------

@pytest.mark.points(1)
def test_sinusoidal_shape_and_dtype(impl):
    """sinusoidal_encoding(P, d) returns a (P, d) float32 table of sines and cosines (in [-1, 1], not constant)."""
    pe = expect_tensor(impl.call(SIN, 12, 8), "sinusoidal_encoding(12, 8)", shape=(12, 8), dtype=torch.float32)
    assert_finite(pe, "sinusoidal_encoding(12, 8)")
    assert float(pe.abs().max()) <= 1.0 + 1e-6 and float(pe.std()) > 0.1, \
        "sinusoidal_encoding(12, 8) must hold sines and cosines: values in [-1, 1] that vary"


@pytest.mark.points(2)
def test_sinusoidal_matches_formula(impl):
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)) and PE[pos, 2i+1] = cos(pos / 10000^(2i/d)) for pos = 0 … P-1."""
    pe = expect_tensor(impl.call(SIN, 50, 16), "sinusoidal_encoding(50, 16)", shape=(50, 16))
    assert_close(pe, expected_pe(50, 16), "sinusoidal_encoding(50, 16)", check_dtype=False, **F32_TOL)


@pytest.mark.points(1)
def test_sinusoidal_position_zero_and_interleaving(impl):
    """Row 0 (position 0) is [0, 1, 0, 1, …]: sines on even columns, cosines on odd columns."""
    pe = expect_tensor(impl.call(SIN, 4, 6), "sinusoidal_encoding(4, 6)", shape=(4, 6))
    assert_close(pe[0], torch.tensor([0.0, 1.0] * 3, dtype=torch.float64), "row 0 (position 0) of the table",
                 check_dtype=False, **F32_TOL)
    assert_close(pe[:, 0], torch.arange(4, dtype=torch.float64).sin(), "column 0 (sin(pos), the fastest frequency)",
                 check_dtype=False, **F32_TOL)
    assert_close(pe, expected_pe(4, 6), "sinusoidal_encoding(4, 6)", check_dtype=False, **F32_TOL)


@pytest.mark.points(1)
def test_sinusoidal_base_argument(impl):
    """``base=`` replaces 10000: with base=100 the table is the first d columns of the default one of width 2d."""
    # 100^(-2i/d) = 10000^(-2i/(2d)): checked against the student's own default table, so that a mistake in
    # the formula itself (judged by the tests above) does not cost this test too
    pe = expect_tensor(impl.call(SIN, 20, 8, base=100.0), "sinusoidal_encoding(20, 8, base=100.0)", shape=(20, 8))
    wide = expect_tensor(impl.call(SIN, 20, 16), "sinusoidal_encoding(20, 16)", shape=(20, 16))
    default = expect_tensor(impl.call(SIN, 20, 8), "sinusoidal_encoding(20, 8)", shape=(20, 8))
    assert not torch.allclose(pe.double(), default.double(), atol=1e-3), \
        "sinusoidal_encoding(20, 8, base=100.0) equals the table with the default base: is base= used?"
    assert_close(pe, wide[:, :8], "sinusoidal_encoding(20, 8, base=100.0) (frequencies 100^(-2i/8), which are those "
                 "of the first 8 columns of sinusoidal_encoding(20, 16))", check_dtype=False, **F32_TOL)


@pytest.mark.points(1)
def test_sinusoidal_odd_width_is_an_error(impl):
    """An odd d_model has no sin/cos pairing: raise a ValueError instead of returning a table."""
    expect_tensor(impl.call(SIN, 3, 4), "sinusoidal_encoding(3, 4)", shape=(3, 4))
    res = impl.outcome(SIN, 3, 7)
    assert not res.ok, "sinusoidal_encoding(3, 7) must raise a ValueError, but a result came back"
    assert res.error_type == "ValueError", \
        f"sinusoidal_encoding(3, 7) must raise a ValueError (the odd width), got {res.error_type}: {res.message}"


# --- TokenEmbedding ------------------------------------------------------------------------------------------

@pytest.mark.points(1)
def test_token_embedding_parameters(impl):
    """TokenEmbedding(V, d) holds one trainable parameter, ``weight``, of shape (V, d)."""
    shapes = impl.param_shapes(TOK, (11, 6))
    assert shapes == {"weight": (11, 6)}, \
        f"parameters of TokenEmbedding(11, 6): expected {{'weight': (11, 6)}}, got {shapes}"


def check_normal_init(impl, name: str, rows: int, d: int) -> None:
    """A fresh ``name(rows, d)`` has ``weight`` drawn from N(0, 0.02^2)."""
    w = impl.run_module(name, (rows, d), {}, None, [attr("weight")]).output
    w = expect_tensor(w, f"weight of a fresh {name}({rows}, {d})", shape=(rows, d)).double()
    std, mean = float(w.std()), float(w.mean())
    assert 0.019 < std < 0.021 and abs(mean) < 0.002, (f"initialise weight from a normal distribution with std 0.02 "
                                                       f"(nn.init.normal_(self.weight, std=0.02)), got mean {mean:.3g} "
                                                       f"and std {std:.3g}")


@pytest.mark.points(1)
def test_token_embedding_initialisation(impl):
    """A fresh TokenEmbedding's weight is drawn from a normal distribution with mean 0 and std 0.02."""
    check_normal_init(impl, TOK, 1000, 64)


@pytest.mark.points(2)
def test_token_embedding_is_a_row_lookup(impl):
    """Token id i gives row i of ``weight``: (B, T) int64 ids -> (B, T, d); equal ids give equal vectors."""
    W = weights(10, 4, seed=1)
    idx = torch.tensor([[3, 3, 9, 0], [1, 7, 2, 3]])
    out = expect_tensor(fwd(impl, TOK, {"vocab_size": 10, "d_model": 4}, {"weight": W}, idx),
                        "TokenEmbedding output", shape=(2, 4, 4), dtype=torch.float64)
    assert_close(out, W[idx], "TokenEmbedding output (scale=False: the rows of weight, unscaled)")


@pytest.mark.points(2)
def test_token_embedding_scale(impl):
    """``scale=True`` multiplies the looked-up rows by sqrt(d_model) (here sqrt(9) = 3); ``scale=False`` does not."""
    W = weights(7, 9, seed=2)
    idx = torch.tensor([[0, 6, 2]])
    out = fwd(impl, TOK, {"vocab_size": 7, "d_model": 9, "scale": True}, {"weight": W}, idx)
    assert_close(out, W[idx] * math.sqrt(9), "TokenEmbedding(scale=True) output")
    out = fwd(impl, TOK, {"vocab_size": 7, "d_model": 9, "scale": False}, {"weight": W}, idx)
    assert_close(out, W[idx], "TokenEmbedding(scale=False) output (the rows of weight, unscaled)")


@pytest.mark.points(1)
def test_token_embedding_any_leading_dims(impl):
    """Ids of shape (T,) and (A, B, T) work too: the output is ids.shape + (d,)."""
    W = weights(12, 5, seed=3)
    for idx in (torch.tensor([4, 11, 0]), torch.randint(0, 12, (2, 3, 4), generator=gen(4))):
        out = fwd(impl, TOK, {"vocab_size": 12, "d_model": 5}, {"weight": W}, idx)
        out = expect_tensor(out, f"output for ids of shape {tuple(idx.shape)}", shape=(*idx.shape, 5))
        assert_close(out, W[idx], f"output for ids of shape {tuple(idx.shape)}")


@pytest.mark.points(2)
def test_token_embedding_gradient(impl):
    """The gradient reaches ``weight``: each row gets the sum of the output gradients of its tokens."""
    V, d = 8, 4
    W = weights(V, d, seed=5)
    idx = torch.tensor([[1, 5, 1], [7, 1, 0]])
    g = randn(2, 3, d, seed=6)
    res = impl.run_module(TOK, (V, d), {}, {"weight": W}, [call("forward", idx)], backward=g, dtype=torch.float64)
    got = res.param_grads.get("weight")
    assert got is not None, "no gradient reached weight: is the lookup detached (e.g. .data, .detach(), no_grad)?"
    want = torch.zeros(V, d, dtype=torch.float64).index_add_(0, idx.reshape(-1), g.reshape(-1, d))
    assert_close(got, want, "gradient w.r.t. weight (token 1 used three times)")


# --- LearnedPositionalEmbedding ------------------------------------------------------------------------------

@pytest.mark.points(1)
def test_learned_positions_parameters(impl):
    """LearnedPositionalEmbedding(max_len, d) holds one trainable parameter, ``weight``, of shape (max_len, d)."""
    shapes = impl.param_shapes(LPE, (16, 6))
    assert shapes == {"weight": (16, 6)}, \
        f"parameters of LearnedPositionalEmbedding(16, 6): expected {{'weight': (16, 6)}}, got {shapes}"


@pytest.mark.points(1)
def test_learned_positions_initialisation(impl):
    """A fresh LearnedPositionalEmbedding's weight is drawn from a normal distribution with mean 0 and std 0.02."""
    check_normal_init(impl, LPE, 1000, 64)


@pytest.mark.points(2)
def test_learned_positions_first_rows(impl):
    """forward(T) returns rows 0 … T-1 of ``weight``, shape (T, d) (no batch axis: it broadcasts)."""
    W = weights(10, 4, seed=7)
    for T in (1, 6, 10):
        out = fwd(impl, LPE, {"max_len": 10, "d_model": 4}, {"weight": W}, T)
        out = expect_tensor(out, f"forward({T})", shape=(T, 4))
        assert_close(out, W[:T], f"forward({T}) (positions 0 … {T - 1})")


@pytest.mark.points(2)
def test_learned_positions_offset(impl):
    """forward(T, offset=k) returns rows k … k+T-1 (the positions of new tokens after k cached ones)."""
    W = weights(12, 4, seed=8)
    for T, off in ((3, 4), (1, 11), (5, 7)):
        out = fwd(impl, LPE, {"max_len": 12, "d_model": 4}, {"weight": W}, T, offset=off)
        out = expect_tensor(out, f"forward({T}, offset={off})", shape=(T, 4))
        assert_close(out, W[off:off + T], f"forward({T}, offset={off}) (positions {off} … {off + T - 1})")


@pytest.mark.points(1)
def test_learned_positions_gradient(impl):
    """Only the rows that forward returned receive a gradient, and exactly the output gradient."""
    W = weights(8, 3, seed=9)
    g = randn(4, 3, seed=10)
    res = impl.run_module(LPE, (8, 3), {}, {"weight": W}, [call("forward", 4)], backward=g, dtype=torch.float64)
    got = res.param_grads.get("weight")
    assert got is not None, "no gradient reached weight: is the slice detached?"
    # the rows the student's forward returned (0..3 if right; which rows is the job of the tests above)
    out = expect_tensor(res.output, "forward(4)", shape=(4, 3)).double()
    rows = [next((r for r in range(8) if torch.equal(o, W[r])), None) for o in out]
    rows = rows if None not in rows else list(range(4))
    want = torch.zeros(8, 3, dtype=torch.float64).index_add_(0, torch.tensor(rows), g)
    assert_close(got, want, f"gradient w.r.t. weight after forward(4), which returned rows {rows}")


# --- apply_rotary --------------------------------------------------------------------------------------------

@pytest.mark.points(2)
def test_rotary_matches_formula(impl):
    """Each pair (x[i], x[i + hs/2]) is rotated by its angle: (x1 cos - x2 sin, x1 sin + x2 cos)."""
    x = randn(2, 3, 6, 8, seed=11)
    cos, sin = rope_angles(6, 8)
    out = expect_tensor(impl.call(ROT, x, cos, sin), "apply_rotary output", shape=(2, 3, 6, 8), dtype=torch.float64)
    close(out, expected_rotary(x, cos, sin), "apply_rotary output")


@pytest.mark.points(1)
def test_rotary_pairs_are_the_two_halves(impl):
    """With one angle of 90 degrees, x[i] moves to x[i + hs/2] and -x[i + hs/2] to x[i] (halves, not neighbours)."""
    x = torch.arange(1.0, 9.0, dtype=torch.float64).view(1, 1, 1, 8)
    cos = torch.tensor([[0.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
    sin = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    want = torch.tensor([-5.0, 2, 3, 4, 1, 6, 7, 8], dtype=torch.float64).view(1, 1, 1, 8)
    close(impl.call(ROT, x, cos, sin), want,
          "apply_rotary([1 … 8]) with pair 0 rotated by +90 degrees (expected [-5, 2, 3, 4, 1, 6, 7, 8])")


@pytest.mark.points(1)
def test_rotary_identity_at_angle_zero_and_keeps_norm(impl):
    """Angle 0 (position 0) leaves x unchanged, and a rotation never changes a vector's length."""
    x = randn(1, 2, 5, 6, seed=12)
    cos, sin = rope_angles(5, 6)
    out = expect_tensor(impl.call(ROT, x, cos, sin), "apply_rotary output", shape=(1, 2, 5, 6))
    close(out[:, :, 0], x[:, :, 0], "apply_rotary at position 0 (angle 0)")
    assert_rotates(out[:, :, 1:], x[:, :, 1:], "apply_rotary at positions 1 … 4")
    close(out.norm(dim=-1), x.norm(dim=-1), "length of each rotated vector")


@pytest.mark.points(2)
def test_rotary_scores_depend_on_relative_position(impl):
    """The same q at position m and k at position n give a score q_m . k_n that depends only on m - n."""
    T, hs = 7, 8
    q = randn(hs, seed=13).expand(1, 1, T, hs).contiguous()
    k = randn(hs, seed=14).expand(1, 1, T, hs).contiguous()
    cos, sin = rope_angles(T, hs)
    qr = expect_tensor(impl.call(ROT, q, cos, sin), "rotated q", shape=(1, 1, T, hs))
    kr = expect_tensor(impl.call(ROT, k, cos, sin), "rotated k", shape=(1, 1, T, hs))
    scores = (qr @ kr.transpose(-2, -1))[0, 0]  # (T, T): row m, column n
    for shift in range(-2, 3):
        diag = torch.diagonal(scores, shift)
        close(diag, diag[:1].expand_as(diag).clone(), f"scores q_m . k_n with n - m = {shift} (must all be equal)")
    spread = float(torch.stack([torch.diagonal(scores, s)[0] for s in range(-2, 3)]).std())
    assert spread > 1e-3, "the scores do not change with the distance m - n: are the vectors rotated at all?"


@pytest.mark.points(2)
def test_rotary_keeps_dtype(impl):
    """x in float64, float32 or bfloat16 (cos/sin in float32) gives x's dtype back; float64 is rotated in float64."""
    x = randn(2, 2, 4, 8, seed=15)
    cos, sin = (t.float() for t in rope_angles(4, 8, first=3))
    ref = expect_tensor(impl.call(ROT, x, cos, sin), "apply_rotary output for float64 x", shape=(2, 2, 4, 8),
                        dtype=torch.float64)
    assert_rotates(ref, x, "apply_rotary output for float64 x")
    for dtype in (torch.float32, torch.bfloat16):  # compared with the same function in float64: one idea per test
        out = expect_tensor(impl.call(ROT, x.to(dtype), cos, sin), f"apply_rotary output for {dtype} x",
                            shape=(2, 2, 4, 8), dtype=dtype)
        assert_finite(out, f"apply_rotary output for {dtype} x")
        assert_close(out, ref.to(dtype), f"apply_rotary output for {dtype} x (compared with your float64 result)")
    # a change of 1e-12, far below float32's resolution, must show in a float64 rotation
    nudged = impl.call(ROT, x + 1e-12 * torch.sign(randn(2, 2, 4, 8, seed=99)), cos, sin)
    frac = float((expect_tensor(nudged, "apply_rotary output", shape=(2, 2, 4, 8)) != ref).double().mean())
    assert frac > 0.9, ("float64 x must be rotated in float64 (promote_types(x.dtype, torch.float32)): changing x by "
                        f"1e-12 changed only {100 * frac:.0f}% of the outputs")


@pytest.mark.points(1)
def test_rotary_any_leading_dims(impl):
    """x of shape (T, hs), (B, T, hs) or (B, nh, T, hs) works, and cos/sin may carry leading axes (B, 1, T, hs/2)."""
    cos, sin = rope_angles(5, 4, first=1)
    x = randn(3, 5, 4, seed=16)
    full = expect_tensor(impl.call(ROT, x[:, None], cos, sin), "apply_rotary for x of shape (3, 1, 5, 4)",
                         shape=(3, 1, 5, 4))  # the shape of the formula tests; compared with itself below
    assert_rotates(full, x[:, None], "apply_rotary for x of shape (3, 1, 5, 4)")
    for part, want in ((x[0], full[0, 0]), (x, full[:, 0])):
        out = expect_tensor(impl.call(ROT, part, cos, sin), f"apply_rotary for x of shape {tuple(part.shape)}",
                            shape=tuple(part.shape))
        close(out, want, f"apply_rotary for x of shape {tuple(part.shape)} (compared with the same rows in 4-D)")
    # every sequence at its own positions: cos/sin (B, 1, T, hs/2) broadcast over the heads
    cs = [rope_angles(5, 4, first=f) for f in (0, 3, 7)]
    cos_b, sin_b = (torch.stack([c[i] for c in cs])[:, None] for i in (0, 1))  # (3, 1, 5, 2)
    x4 = randn(3, 2, 5, 4, seed=17)
    out = expect_tensor(impl.call(ROT, x4, cos_b, sin_b), "apply_rotary with cos/sin of shape (3, 1, 5, 2)",
                        shape=(3, 2, 5, 4))
    for b in range(3):
        alone = expect_tensor(impl.call(ROT, x4[b], cos_b[b, 0], sin_b[b, 0]), f"apply_rotary for sequence {b} alone",
                              shape=(2, 5, 4))
        close(out[b], alone, f"sequence {b} of apply_rotary with cos/sin of shape (3, 1, 5, 2) (vs. it alone)")


@pytest.mark.points(1)
def test_rotary_gradient(impl):
    """The gradient w.r.t. x is the output gradient rotated back (your rotation's transpose)."""
    T, hs = 4, 6
    cos, sin = rope_angles(T, hs, first=2)
    # the student's rotation as matrices A_t, column j = apply_rotary(e_j) at position t
    basis = torch.eye(hs, dtype=torch.float64)[:, None, None, :].expand(hs, 1, T, hs).contiguous()
    cols = expect_tensor(impl.call(ROT, basis, cos, sin), "apply_rotary of the unit vectors", shape=(hs, 1, T, hs))
    assert_rotates(cols, basis, "apply_rotary of the unit vectors")
    A = cols[:, 0].double().permute(1, 2, 0)  # (T, hs_out, hs_in)
    x, g = randn(1, 2, T, hs, seed=18), randn(1, 2, T, hs, seed=19)
    got = impl.grad(ROT, [x, cos, sin], {}, grad_out=g).grads[0]
    assert got is not None, "no gradient reached x: is the output detached from it?"
    close(got, torch.einsum("tij,bhti->bhtj", A, g), "gradient w.r.t. x (the output gradient rotated back)")
