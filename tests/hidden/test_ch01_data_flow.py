"""Hidden suite, chapter 1: token embeddings and positions (sinusoidal, learned, rotary).

Interface: ``sinusoidal_encoding(n_positions, d_model, *, base=10000.0)``,
``TokenEmbedding(vocab_size, d_model, *, scale=False)`` (parameter ``weight``),
``LearnedPositionalEmbedding(max_len, d_model)`` (parameter ``weight``, ``forward(T, offset=0)``),
``apply_rotary(x, cos, sin)`` (rotates the pairs ``(x[..., i], x[..., i + hs/2])``). Every expected value
is computed here, in the grader, from the formulas in float64 (the rotation as a complex multiplication).
"""
from __future__ import annotations

import math

import pytest
import torch

from tfmcourse.grading.checks import assert_close, assert_finite, expect_tensor
from tfmcourse.grading.impl import call

pytestmark = [pytest.mark.ch01]
SIN, TOK, LPE, ROT = "sinusoidal_encoding", "TokenEmbedding", "LearnedPositionalEmbedding", "apply_rotary"
F32_TOL = {"rtol": 1e-4, "atol": 1e-4}  # float32 angles up to ~50 rad carry ~1e-5 of rounding


def close(actual, expected: torch.Tensor, what: str, **kw) -> None:
    """``assert_close`` with float64 expectations compared at rtol=1e-5, atol=1e-6: tight enough for any
    formula mistake, loose enough for an implementation that computes a float64 input in float32."""
    if expected.dtype == torch.float64:
        kw = {"rtol": 1e-5, "atol": 1e-6, **kw}
    assert_close(actual, expected, what, **kw)


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
    return impl_.run_module(name, (), init_kwargs, state, [call("forward", *args, **kwargs)], dtype=torch.float64).output


# --- sinusoidal_encoding -------------------------------------------------------------------------------------

@pytest.mark.points(1)
def test_sinusoidal_shape_and_dtype(impl):
    """sinusoidal_encoding(P, d) returns a (P, d) float32 table."""
    expect_tensor(impl.call(SIN, 12, 8), "sinusoidal_encoding(12, 8)", shape=(12, 8), dtype=torch.float32)


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
    """``base=`` replaces 10000 in the frequencies."""
    pe = expect_tensor(impl.call(SIN, 20, 8, base=100.0), "sinusoidal_encoding(20, 8, base=100.0)", shape=(20, 8))
    assert_close(pe, expected_pe(20, 8, base=100.0), "sinusoidal_encoding(20, 8, base=100.0)",
                 check_dtype=False, **F32_TOL)


@pytest.mark.points(1)
def test_sinusoidal_odd_width_is_an_error(impl):
    """An odd d_model has no sin/cos pairing: raise an error (ValueError) instead of returning a table."""
    expect_tensor(impl.call(SIN, 3, 4), "sinusoidal_encoding(3, 4)", shape=(3, 4))
    res = impl.outcome(SIN, 3, 7)
    assert not res.ok, "sinusoidal_encoding(3, 7) must raise an error, but a result came back"
    assert res.error_type != "NotImplementedError", "the error must come from the odd width, not a stub"


# --- TokenEmbedding ------------------------------------------------------------------------------------------

@pytest.mark.points(1)
def test_token_embedding_parameters(impl):
    """TokenEmbedding(V, d) holds one trainable parameter, ``weight``, of shape (V, d)."""
    shapes = impl.param_shapes(TOK, (11, 6))
    assert shapes == {"weight": (11, 6)}, f"parameters of TokenEmbedding(11, 6): expected {{'weight': (11, 6)}}, got {shapes}"


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
    """``scale=True`` multiplies the looked-up rows by sqrt(d_model) (here sqrt(9) = 3)."""
    W = weights(7, 9, seed=2)
    idx = torch.tensor([[0, 6, 2]])
    out = fwd(impl, TOK, {"vocab_size": 7, "d_model": 9, "scale": True}, {"weight": W}, idx)
    assert_close(out, W[idx] * math.sqrt(9), "TokenEmbedding(scale=True) output")


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
    """The gradient reaches ``weight``: each row gets the sum of the output gradients of its tokens (scaled)."""
    V, d = 8, 4
    W = weights(V, d, seed=5)
    idx = torch.tensor([[1, 5, 1], [7, 1, 0]])
    g = randn(2, 3, d, seed=6)
    res = impl.run_module(TOK, (V, d), {"scale": True}, {"weight": W}, [call("forward", idx)], backward=g,
                          dtype=torch.float64)
    got = res.param_grads.get("weight")
    assert got is not None, "no gradient reached weight: is the lookup detached (e.g. .data, .detach(), no_grad)?"
    want = torch.zeros(V, d, dtype=torch.float64).index_add_(0, idx.reshape(-1), g.reshape(-1, d)) * math.sqrt(d)
    assert_close(got, want, "gradient w.r.t. weight (scale=True, token 1 used three times)")


# --- LearnedPositionalEmbedding ------------------------------------------------------------------------------

@pytest.mark.points(1)
def test_learned_positions_parameters(impl):
    """LearnedPositionalEmbedding(max_len, d) holds one trainable parameter, ``weight``, of shape (max_len, d)."""
    shapes = impl.param_shapes(LPE, (16, 6))
    assert shapes == {"weight": (16, 6)}, \
        f"parameters of LearnedPositionalEmbedding(16, 6): expected {{'weight': (16, 6)}}, got {shapes}"


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
    """Only the rows that were used receive a gradient, and exactly the output gradient."""
    W = weights(8, 3, seed=9)
    g = randn(4, 3, seed=10)
    res = impl.run_module(LPE, (8, 3), {}, {"weight": W}, [call("forward", 4, offset=2)], backward=g,
                          dtype=torch.float64)
    got = res.param_grads.get("weight")
    assert got is not None, "no gradient reached weight: is the slice detached?"
    want = torch.zeros(8, 3, dtype=torch.float64)
    want[2:6] = g
    assert_close(got, want, "gradient w.r.t. weight after forward(4, offset=2)")


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


@pytest.mark.points(1)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
def test_rotary_keeps_dtype(impl, dtype):
    """The output has x's dtype (rotate in float32 for bf16 inputs, then cast back)."""
    x = randn(2, 2, 4, 8, seed=15, dtype=dtype)
    cos, sin = rope_angles(4, 8, first=3)
    out = impl.call(ROT, x, cos.float(), sin.float())
    out = expect_tensor(out, f"apply_rotary output for {dtype} x", shape=(2, 2, 4, 8), dtype=dtype)
    assert_finite(out, f"apply_rotary output for {dtype} x")
    close(out, expected_rotary(x, cos.float(), sin.float()).to(dtype), f"apply_rotary output in {dtype}")


@pytest.mark.points(1)
def test_rotary_any_leading_dims(impl):
    """x of shape (T, hs) or (B, T, hs) works with cos/sin of shape (T, hs/2): only the last two axes matter."""
    cos, sin = rope_angles(5, 4, first=1)
    for lead in ((), (3,)):
        x = randn(*lead, 5, 4, seed=16)
        out = expect_tensor(impl.call(ROT, x, cos, sin), f"apply_rotary for x of shape {tuple(x.shape)}",
                            shape=tuple(x.shape))
        close(out, expected_rotary(x, cos, sin), f"apply_rotary for x of shape {tuple(x.shape)}")


@pytest.mark.points(1)
def test_rotary_gradient(impl):
    """The gradient w.r.t. x is the output gradient rotated back (the inverse rotation)."""
    x = randn(1, 2, 4, 6, seed=17)
    cos, sin = rope_angles(4, 6, first=2)
    g = randn(1, 2, 4, 6, seed=18)
    res = impl.grad(ROT, [x, cos, sin], {}, grad_out=g)
    got = res.grads[0]
    assert got is not None, "no gradient reached x: is the output detached from it?"
    leaf = x.clone().requires_grad_()
    expected_rotary(leaf, cos, sin).backward(g)
    close(got, leaf.grad, "gradient w.r.t. x")
