"""Hidden suite, chapter 3: scaled dot-product attention and the mask builders.

Interface: ``scaled_dot_product_attention(q, k, v, mask=None, *, is_causal=False, dropout_p=0.0,
scale=None, return_weights=False)``, ``causal_mask(T, S=None, *, device=None)``,
``padding_mask(lengths, S=None)``. Masks are boolean, True = may attend. Every expected value is computed
here, in the grader, with PyTorch (``F.scaled_dot_product_attention`` in float64) or the reference.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tfmcourse.attention import causal_mask as ref_causal_mask
from tfmcourse.attention import scaled_dot_product_attention as ref_sdpa
from tfmcourse.grading.checks import assert_close, assert_finite, expect_tensor

pytestmark = [pytest.mark.ch03]
SDPA, CAUSAL, PADDING = "scaled_dot_product_attention", "causal_mask", "padding_mask"


def qkv(*lead: int, T: int = 5, S: int | None = None, d_k: int = 8, d_v: int | None = None,
        dtype: torch.dtype = torch.float64, scale: float = 1.0, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    S, d_v = S or T, d_v or d_k
    q = torch.randn(*lead, T, d_k, generator=g, dtype=torch.float64) * scale
    k = torch.randn(*lead, S, d_k, generator=g, dtype=torch.float64) * scale
    v = torch.randn(*lead, S, d_v, generator=g, dtype=torch.float64)
    return q.to(dtype), k.to(dtype), v.to(dtype)


def bottom_right_causal(T: int, S: int) -> torch.Tensor:
    """Query i may attend to key j iff j <= i + (S - T)."""
    return torch.arange(S)[None, :] <= torch.arange(T)[:, None] + (S - T)


def expected(q, k, v, mask=None, *, is_causal=False, scale=None) -> torch.Tensor:
    """Attention in float64 by PyTorch; rows with no key to attend to are zeros."""
    q, k, v = q.double(), k.double(), v.double()
    T, S = q.size(-2), k.size(-2)
    if is_causal:
        c = bottom_right_causal(T, S)
        mask = c if mask is None else (mask & c)
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    mask = mask.expand(*q.shape[:-2], T, S)
    safe = mask | ~mask.any(-1, keepdim=True)  # give empty rows something to attend to, then zero them
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=safe, scale=scale)
    return out.masked_fill(~mask.any(-1, keepdim=True), 0.0)


def expected_weights(q, k, mask=None, *, scale=None) -> torch.Tensor:
    q, k = q.double(), k.double()
    scale = 1 / math.sqrt(q.size(-1)) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, -1).nan_to_num(0.0)


def random_mask(*shape: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(*shape, generator=g) < 0.6
    m[..., 0] = True  # every query keeps at least one key
    return m


# --- scaled_dot_product_attention: values ---------------------------------------------------------------

@pytest.mark.points(2)
def test_sdpa_matches_pytorch_without_mask(impl):
    """Without a mask, the output equals softmax(QK^T / sqrt(d_k)) V (PyTorch's SDPA)."""
    q, k, v = qkv(2, 3, T=5, d_k=8)
    assert_close(impl.call(SDPA, q, k, v), expected(q, k, v), "attention output (no mask)")


@pytest.mark.points(2)
def test_sdpa_keys_values_of_other_length_and_width(impl):
    """T queries over S keys with d_v != d_k give (..., T, d_v); the scale uses d_k, not d_v."""
    q, k, v = qkv(2, 2, T=3, S=6, d_k=16, d_v=4, seed=3)
    out = expect_tensor(impl.call(SDPA, q, k, v), "attention output", shape=(2, 2, 3, 4))
    assert_close(out, expected(q, k, v), "attention output with S != T and d_v != d_k")


@pytest.mark.points(2)
def test_sdpa_scales_by_sqrt_dk(impl):
    """Scores are divided by sqrt(d_k) (checked with d_k = 64, where a wrong scale shows clearly)."""
    q, k, v = qkv(1, 2, T=4, d_k=64, seed=4)
    assert_close(impl.call(SDPA, q, k, v), expected(q, k, v), "attention output with d_k = 64")


@pytest.mark.points(1)
def test_sdpa_explicit_scale(impl):
    """An explicit ``scale=`` replaces 1/sqrt(d_k)."""
    q, k, v = qkv(2, 1, T=4, d_k=8, seed=5)
    assert_close(impl.call(SDPA, q, k, v, scale=0.9), expected(q, k, v, scale=0.9), "attention output with scale=0.9")


@pytest.mark.points(2)
def test_sdpa_boolean_mask(impl):
    """A boolean mask (True = may attend) broadcast from (B, 1, T, S) matches PyTorch's attn_mask."""
    q, k, v = qkv(2, 3, T=5, S=7, seed=6)
    mask = random_mask(2, 1, 5, 7)
    assert_close(impl.call(SDPA, q, k, v, mask), expected(q, k, v, mask), "attention output with a boolean mask")


@pytest.mark.points(2)
def test_sdpa_is_causal(impl):
    """``is_causal=True`` lets query i see keys 0..i only."""
    q, k, v = qkv(2, 2, T=6, seed=7)
    assert_close(impl.call(SDPA, q, k, v, is_causal=True), expected(q, k, v, is_causal=True),
                 "attention output with is_causal=True")


@pytest.mark.points(1)
def test_sdpa_is_causal_more_keys_than_queries(impl):
    """With S > T (cached keys), the causal mask is aligned bottom-right: the last query sees every key."""
    q, k, v = qkv(1, 2, T=3, S=5, seed=8)
    assert_close(impl.call(SDPA, q, k, v, is_causal=True), expected(q, k, v, is_causal=True),
                 "attention output with is_causal=True, T=3, S=5")


@pytest.mark.points(1)
def test_sdpa_causal_and_padding_together(impl):
    """``is_causal=True`` and a padding mask are both applied (logical AND)."""
    q, k, v = qkv(2, 2, T=5, seed=9)
    keep = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])[:, None, None, :]
    assert_close(impl.call(SDPA, q, k, v, keep, is_causal=True), expected(q, k, v, keep, is_causal=True),
                 "attention output with a causal and a padding mask")


# --- the attention weights ---------------------------------------------------------------------------------

@pytest.mark.points(2)
def test_sdpa_returned_weights(impl):
    """``return_weights=True`` gives (output, weights): rows sum to one, zero where masked, equal softmax."""
    q, k, v = qkv(2, 3, T=4, S=6, seed=10)
    mask = random_mask(2, 1, 4, 6, seed=2)
    res = impl.call(SDPA, q, k, v, mask, return_weights=True)
    assert isinstance(res, (tuple, list)) and len(res) == 2, \
        f"return_weights=True must return (output, weights), got {type(res).__name__}"
    out, w = res
    w = expect_tensor(w, "attention weights", shape=(2, 3, 4, 6))
    assert_close(w.sum(-1), torch.ones(2, 3, 4, dtype=torch.float64), "sum of each row of the attention weights")
    masked = w.masked_select(~mask.expand_as(w))
    assert bool((masked == 0).all()), f"attention weights must be exactly 0 where the mask is False, max {float(masked.abs().max()):.3g}"
    assert_close(w, expected_weights(q, k, mask), "attention weights")
    assert_close(out, expected(q, k, v, mask), "attention output (with return_weights=True)")


@pytest.mark.points(1)
def test_sdpa_weights_are_softmax_over_keys(impl):
    """The softmax runs over the keys (last axis) for each query."""
    q, k, v = qkv(1, 1, T=3, S=5, seed=11)
    _, w = impl.call(SDPA, q, k, v, return_weights=True)
    assert_close(w, expected_weights(q, k), "attention weights (softmax over the key axis)")


# --- numerics ----------------------------------------------------------------------------------------------

@pytest.mark.points(2)
def test_sdpa_large_scores_are_stable(impl):
    """Scores in the thousands (float32) give finite outputs equal to the exact result (subtract the max)."""
    q, k, v = qkv(2, 2, T=5, d_k=16, dtype=torch.float32, scale=40.0, seed=12)
    out = expect_tensor(impl.call(SDPA, q, k, v), "attention output with large scores", dtype=torch.float32)
    assert_finite(out, "attention output with scores around 1e3")
    assert_close(out, expected(q, k, v).float(), "attention output with large scores", rtol=1e-3, atol=1e-4)


@pytest.mark.points(2)
def test_sdpa_fully_masked_rows_are_zero(impl):
    """A query whose keys are all masked (a padding query) gets zeros, not NaN; other rows are unaffected."""
    q, k, v = qkv(1, 2, T=4, S=4, seed=13)
    mask = random_mask(1, 1, 4, 4, seed=3)
    mask[..., 2, :] = False
    out, w = impl.call(SDPA, q, k, v, mask, return_weights=True)
    assert_finite(expect_tensor(out, "output"), "attention output with a fully masked row")
    assert_close(out, expected(q, k, v, mask), "attention output with a fully masked row")
    assert_close(w, expected_weights(q, k, mask), "attention weights with a fully masked row")


@pytest.mark.points(1)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
def test_sdpa_keeps_dtype(impl, dtype):
    """Output and weights keep the input dtype (compute in float32 for bf16, then cast back)."""
    q, k, v = qkv(2, 2, T=5, dtype=dtype, seed=14)
    mask = random_mask(2, 1, 5, 5, seed=4)
    out, w = impl.call(SDPA, q, k, v, mask, return_weights=True)
    expect_tensor(out, f"output for {dtype} inputs", dtype=dtype)
    expect_tensor(w, f"weights for {dtype} inputs", dtype=dtype)
    assert_close(out, expected(q, k, v, mask).to(dtype), f"attention output in {dtype}")


# --- shapes ------------------------------------------------------------------------------------------------

@pytest.mark.points(1)
def test_sdpa_any_leading_dims(impl):
    """Inputs (T, d), (B, T, d) and (A, B, H, T, d) all work: only the last two axes are special."""
    for lead in [(), (3,), (2, 2, 3)]:
        q, k, v = qkv(*lead, T=4, S=6, d_k=8, d_v=3, seed=15)
        out = expect_tensor(impl.call(SDPA, q, k, v), f"output for leading dims {lead}", shape=(*lead, 4, 3))
        assert_close(out, expected(q, k, v), f"attention output for leading dims {lead}")


@pytest.mark.points(1)
def test_sdpa_mismatched_dk_is_an_error(impl):
    """Queries and keys of different widths raise an error instead of returning something."""
    q, k, v = qkv(2, T=4, d_k=8)
    assert_close(impl.call(SDPA, q, k, v), expected(q, k, v), "attention output (B, T, d) inputs")
    _, k6, v6 = qkv(2, T=4, d_k=6)
    res = impl.outcome(SDPA, q, k6, v6)
    assert not res.ok, "q of width 8 and k of width 6 must raise an error, but a result came back"
    assert res.error_type != "NotImplementedError", "the error must come from the mismatch, not a stub"


# --- gradients ---------------------------------------------------------------------------------------------

@pytest.mark.points(2)
def test_sdpa_gradients(impl):
    """Gradients w.r.t. q, k and v equal PyTorch's (float64, causal + padding mask)."""
    q, k, v = qkv(2, 2, T=5, seed=16)
    keep = torch.tensor([[True] * 5, [True] * 4 + [False]])[:, None, None, :]
    g = torch.randn(2, 2, 5, 8, generator=torch.Generator().manual_seed(17), dtype=torch.float64)
    res = impl.grad(SDPA, [q, k, v, keep], {"is_causal": True}, grad_out=g)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    expected(*leaves, keep, is_causal=True).backward(g)
    for name, got, leaf in zip("qkv", res.grads, leaves):
        assert got is not None, f"no gradient reached {name}: is the output detached from the inputs?"
        assert_close(got, leaf.grad, f"gradient w.r.t. {name}")


@pytest.mark.points(1)
def test_sdpa_gradients_finite_with_fully_masked_rows(impl):
    """A fully masked (padding) query does not put NaN into the gradients."""
    q, k, v = qkv(1, 1, T=4, seed=18)
    mask = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    mask[..., 1, :] = False
    g = torch.ones(1, 1, 4, 8, dtype=torch.float64)
    res = impl.grad(SDPA, [q, k, v, mask], {}, grad_out=g)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    ref_sdpa(*leaves, mask).backward(g)
    for name, got, leaf in zip("qkv", res.grads, leaves):
        got = expect_tensor(got, f"gradient w.r.t. {name}")
        assert_finite(got, f"gradient w.r.t. {name} with a fully masked query")
        assert_close(got, leaf.grad, f"gradient w.r.t. {name} with a fully masked query")


@pytest.mark.points(1)
def test_sdpa_dropout_applies_to_weights(impl):
    """``dropout_p=1.0`` drops every attention weight, so the output is zero."""
    q, k, v = qkv(1, 2, T=3, seed=19)
    assert_close(impl.call(SDPA, q, k, v, dropout_p=0.0), expected(q, k, v), "output with dropout_p=0.0")
    out = expect_tensor(impl.call(SDPA, q, k, v, dropout_p=1.0), "output with dropout_p=1.0", shape=(1, 2, 3, 8))
    assert_close(out, torch.zeros_like(out), "output with dropout_p=1.0")


# --- causal_mask -------------------------------------------------------------------------------------------

@pytest.mark.points(2)
def test_causal_mask_square(impl):
    """causal_mask(T) is a (T, T) bool lower-triangular matrix: query i may attend to keys 0..i."""
    m = expect_tensor(impl.call(CAUSAL, 5), "causal_mask(5)", shape=(5, 5), dtype=torch.bool)
    assert bool(m[0, 0]) and not bool(m[0, 1]), "True means 'may attend': a query sees itself, not the next token"
    assert_close(m, torch.ones(5, 5, dtype=torch.bool).tril(), "causal_mask(5)")
    assert_close(impl.call(CAUSAL, 3, device="cpu"), torch.ones(3, 3, dtype=torch.bool).tril(), "causal_mask(3, device='cpu')")


@pytest.mark.points(2)
@pytest.mark.parametrize("T,S", [(3, 5), (1, 4), (5, 3)])
def test_causal_mask_rectangular_is_bottom_right(impl, T, S):
    """causal_mask(T, S): query i may attend to key j iff j <= i + (S - T) (queries are the last T positions)."""
    want = bottom_right_causal(T, S)
    assert torch.equal(want, ref_causal_mask(T, S))
    assert_close(expect_tensor(impl.call(CAUSAL, T, S), f"causal_mask({T}, {S})", shape=(T, S), dtype=torch.bool),
                 want, f"causal_mask({T}, {S})")


# --- padding_mask ------------------------------------------------------------------------------------------

@pytest.mark.points(2)
def test_padding_mask_shape_and_values(impl):
    """padding_mask(lengths) is (B, 1, 1, max length) bool, True at real tokens (j < length)."""
    lengths = torch.tensor([3, 1, 4])
    want = (torch.arange(4)[None, :] < lengths[:, None])[:, None, None, :]
    m = expect_tensor(impl.call(PADDING, lengths), "padding_mask([3, 1, 4])", shape=(3, 1, 1, 4), dtype=torch.bool)
    assert bool(m[1, 0, 0, 0]) and not bool(m[1, 0, 0, 1]), "True marks real tokens, False marks padding"
    assert_close(m, want, "padding_mask([3, 1, 4])")


@pytest.mark.points(1)
def test_padding_mask_explicit_length_and_empty_sequence(impl):
    """``S`` pads beyond the longest sequence; a length of 0 gives an all-False row."""
    lengths = torch.tensor([2, 0])
    want = (torch.arange(5)[None, :] < lengths[:, None])[:, None, None, :]
    assert_close(expect_tensor(impl.call(PADDING, lengths, 5), "padding_mask([2, 0], S=5)", shape=(2, 1, 1, 5)),
                 want, "padding_mask([2, 0], S=5)")
