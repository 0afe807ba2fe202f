"""Hidden suite, chapter 3: scaled dot-product attention and the mask builders.

Interface: ``scaled_dot_product_attention(q, k, v, mask=None, *, is_causal=False, dropout_p=0.0,
scale=None, return_weights=False)``, ``causal_mask(T, S=None, *, device=None)``,
``padding_mask(lengths, S=None)``. Masks are boolean, True = may attend. Every expected value is computed
here, in the grader, with PyTorch (``F.scaled_dot_product_attention`` in float64) or the reference.

One idea per test, so that one mistake costs the points of its own idea only:

* the default scale 1/sqrt(d_k) is checked by the scale tests alone; every other test passes ``scale=``
  explicitly, and the tests of masks, dtypes, gradients and dropout use d_k = 1 with ``scale=1.0``, where
  every reading of the scale (1/sqrt(d_k), 1/d_k, none, the explicit value, its inverse) gives the same
  scores;
* values are compared at a float32 tolerance and dtypes are checked by the dtype tests only;
* ``is_causal`` is checked against PyTorch, or else against the student's own function called with the
  causal mask passed explicitly (so a mistake in ``causal_mask`` or in applying ``mask`` is not charged
  to ``is_causal`` again);
* the weights are read off the output with ``v`` = identity (output = weights), so only the
  ``return_weights`` test needs the tuple.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tfmcourse.grading.checks import assert_close, assert_finite, assert_on_meta, expect_tensor

pytestmark = [pytest.mark.ch03]
SDPA, CAUSAL, PADDING = "scaled_dot_product_attention", "causal_mask", "padding_mask"
TOL = {"rtol": 1e-4, "atol": 1e-5}  # float64 inputs: tight for any mistake, loose for a float32 computation
ONE = {"scale": 1.0}  # with d_k = 1, every way of scaling gives these scores

REQUIREMENTS: list[tuple[str, list[str]]] = [
    (("causal_mask(T) is a (T, T) bool lower triangle, diagonal included (True = may attend); S defaults to T; "
      "it takes device="), ["test_causal_mask_square"]),
    ("causal_mask(T, S): the queries are the last T of S positions, query i sees keys j <= i + (S - T)",
     ["test_causal_mask_rectangular_is_bottom_right"]),
    (("padding_mask(lengths) is (B, 1, 1, S) bool, True at real tokens (j < lengths[b]); S defaults to the "
      "longest length"), ["test_padding_mask_shape_and_values"]),
    ("padding_mask: a larger S pads further; a length of 0 gives an all-False row",
     ["test_padding_mask_explicit_length_and_empty_sequence"]),
    ("scores Q K^T times the scale, softmax over the keys, weighted sum of the values",
     ["test_sdpa_matches_pytorch", "test_sdpa_softmax_over_keys"]),
    ("the default scale is 1/sqrt(d_k) with d_k = q.size(-1) (not 1/d_k, not d_v)",
     ["test_sdpa_default_scale_is_one_over_sqrt_dk"]),
    ("an explicit scale= replaces 1/sqrt(d_k), 0.0 included",
     ["test_sdpa_explicit_scale", "test_sdpa_explicit_scale_zero"]),
    ("T queries over S keys with d_v != d_k give (..., T, d_v)", ["test_sdpa_other_lengths_and_widths"]),
    ("any number of leading axes: (T, d), (B, T, d), (B, nh, T, d), ...", ["test_sdpa_any_leading_dims"]),
    ("queries and keys of different widths (and keys and values of different lengths) raise an error",
     ["test_sdpa_mismatched_shapes_are_errors"]),
    ("return_weights=True returns (output, weights), the weights (..., T, S) in q's dtype; otherwise only the output",
     ["test_sdpa_returned_weights"]),
    ("a boolean mask (True = may attend) broadcasts against the scores; masked keys get weight 0",
     ["test_sdpa_boolean_mask"]),
    ("is_causal=True applies causal_mask(T, S) (bottom-right when S > T); is_causal=False does not",
     ["test_sdpa_is_causal", "test_sdpa_is_causal_more_keys_than_queries"]),
    ("is_causal=True and a mask are combined with a logical and", ["test_sdpa_causal_and_mask_together"]),
    ("a query whose keys are all masked gets zero weights and a zero output, never NaN",
     ["test_sdpa_fully_masked_rows_are_zero", "test_sdpa_gradients_finite_with_fully_masked_rows"]),
    ("large scores do not overflow (softmax subtracts the row maximum)", ["test_sdpa_large_scores_are_stable"]),
    ("the output keeps the input dtype (softmax in at least float32, cast back)", ["test_sdpa_keeps_dtype"]),
    ("gradients reach q, k and v", ["test_sdpa_gradients"]),
    ("dropout on the attention weights (after the softmax, before the product with v), rescaled by 1/(1-p)",
     ["test_sdpa_dropout_drops_and_rescales_the_weights"]),
    ("dropout only when dropout_p > 0; dropout_p=1.0 drops every weight (output zero)",
     ["test_sdpa_dropout_zero_and_one"]),
]


def qkv(*lead: int, T: int = 5, S: int | None = None, d_k: int = 8, d_v: int | None = None,
        dtype: torch.dtype = torch.float64, size: float = 1.0, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random q (..., T, d_k), k (..., S, d_k), v (..., S, d_v) in float64, cast to ``dtype``."""
    g = torch.Generator().manual_seed(seed)
    S, d_v = S or T, d_v or d_k
    q = torch.randn(*lead, T, d_k, generator=g, dtype=torch.float64) * size
    k = torch.randn(*lead, S, d_k, generator=g, dtype=torch.float64) * size
    v = torch.randn(*lead, S, d_v, generator=g, dtype=torch.float64)
    return q.to(dtype), k.to(dtype), v.to(dtype)


def identity_values(*lead: int, S: int) -> torch.Tensor:
    """v = I (S x S) on every leading index: the output then *is* the attention weights."""
    return torch.eye(S, dtype=torch.float64).expand(*lead, S, S).contiguous()


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


def random_mask(*shape: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(*shape, generator=g) < 0.6
    m[..., 0] = True  # every query keeps at least one key
    return m


def close(actual, expected_: torch.Tensor, what: str, **kw) -> None:
    """Values within a float32 tolerance; the dtype is the dtype tests' business."""
    assert_close(actual, expected_, what, check_dtype=False, **{**TOL, **kw})


def matches(actual, expected_: torch.Tensor) -> bool:
    try:
        close(actual, expected_, "")
        return True
    except AssertionError:
        return False


def causal_masks_to_accept(impl, T: int, S: int) -> list[torch.Tensor]:
    """The true causal mask, and the student's causal_mask(T, S) when it returns a different (T, S) bool mask."""
    masks = [bottom_right_causal(T, S)]
    res = impl.outcome(CAUSAL, T, S)
    if res.ok and isinstance(res.value, torch.Tensor) and res.value.dtype == torch.bool \
            and tuple(res.value.shape) == (T, S) and not torch.equal(res.value, masks[0]):
        masks.append(res.value)
    return masks


def check_causal(impl, q, k, v, mask, what: str) -> None:
    """``is_causal=True`` (with ``mask``, if given) equals PyTorch's attention with the causal mask, or else
    the student's own function called with the causal mask passed explicitly (their causal_mask or the
    true one), provided that differs from ignoring is_causal. Only the handling of is_causal is judged."""
    T, S = q.size(-2), k.size(-2)
    kwargs = {"is_causal": True, **ONE}
    out = expect_tensor(impl.call(SDPA, q, k, v, mask, **kwargs), what, shape=(*q.shape[:-1], v.size(-1)))
    if matches(out, expected(q, k, v, mask, is_causal=True, scale=1.0)):
        return
    without = impl.call(SDPA, q, k, v, mask, **ONE)
    for c in causal_masks_to_accept(impl, T, S):
        own = impl.call(SDPA, q, k, v, c if mask is None else (mask & c), **ONE)
        if isinstance(own, torch.Tensor) and matches(out, own) and not matches(own, without):
            return
    close(out, expected(q, k, v, mask, is_causal=True, scale=1.0), what)


# --- causal_mask -------------------------------------------------------------------------------------------

@pytest.mark.points(2)
def test_causal_mask_square(impl):
    """causal_mask(T) is a (T, T) bool lower triangle, diagonal included: query i may attend to keys 0..i."""
    m = expect_tensor(impl.call(CAUSAL, 5), "causal_mask(5)", shape=(5, 5), dtype=torch.bool)
    assert bool(m[0, 0]) and not bool(m[0, 1]), "True means 'may attend': a query sees itself, not the next token"
    assert_close(m, torch.ones(5, 5, dtype=torch.bool).tril(), "causal_mask(5)")
    assert_close(impl.call(CAUSAL, 1), torch.ones(1, 1, dtype=torch.bool), "causal_mask(1)")
    assert_close(impl.call(CAUSAL, 3, device="cpu"), torch.ones(3, 3, dtype=torch.bool).tril(),
                 "causal_mask(3, device='cpu')")
    assert_on_meta(impl.call(CAUSAL, 3, device="meta"), "causal_mask(3, device='meta')")  # device= honoured


@pytest.mark.points(2)
def test_causal_mask_rectangular_is_bottom_right(impl):
    """causal_mask(T, S): query i may attend to key j iff j <= i + (S - T) (the queries are the last T positions)."""
    for T, S in [(3, 5), (1, 4), (5, 3), (4, 4)]:
        m = expect_tensor(impl.call(CAUSAL, T, S), f"causal_mask({T}, {S})", shape=(T, S), dtype=torch.bool)
        assert_close(m, bottom_right_causal(T, S), f"causal_mask({T}, {S})")


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
    assert_close(expect_tensor(impl.call(PADDING, lengths, 5), "padding_mask([2, 0], S=5)", shape=(2, 1, 1, 5),
                               dtype=torch.bool), want, "padding_mask([2, 0], S=5)")


# --- scores, scale, softmax, weighted sum ---------------------------------------------------------------------

@pytest.mark.points(2)
def test_sdpa_matches_pytorch(impl):
    """softmax(Q K^T * scale) V equals PyTorch's attention (scale passed explicitly: the default has its own tests)."""
    q, k, v = qkv(3, T=5, S=7, d_k=8)
    s = 1 / math.sqrt(8)
    close(impl.call(SDPA, q, k, v, scale=s), expected(q, k, v, scale=s), "attention output (scale=1/sqrt(8))")


@pytest.mark.points(1)
def test_sdpa_softmax_over_keys(impl):
    """The softmax runs over the keys (last axis): each query's weights are positive and sum to one."""
    q, k, _ = qkv(2, T=4, S=6, d_k=1, seed=11)
    w = expect_tensor(impl.call(SDPA, q, k, identity_values(2, S=6), **ONE), "attention output with v = I",
                      shape=(2, 4, 6))
    close(w.sum(-1), torch.ones(2, 4, dtype=torch.float64), "sum over the keys of each query's weights (v = I)")
    close(w, torch.softmax(q @ k.transpose(-2, -1), dim=-1), "attention weights (the output for v = I)")


@pytest.mark.points(2)
def test_sdpa_default_scale_is_one_over_sqrt_dk(impl):
    """Without scale=, scores are divided by sqrt(d_k), d_k = q.size(-1) (d_k = 64, d_v = 16: not 1/d_k, not d_v)."""
    q, k, v = qkv(2, T=4, S=5, d_k=64, d_v=16, seed=4)
    close(impl.call(SDPA, q, k, v), expected(q, k, v), "attention output with d_k = 64 and the default scale")


@pytest.mark.points(1)
def test_sdpa_explicit_scale(impl):
    """An explicit ``scale=`` multiplies the scores instead of 1/sqrt(d_k)."""
    q, k, v = qkv(2, T=4, d_k=8, seed=5)
    close(impl.call(SDPA, q, k, v, scale=0.9), expected(q, k, v, scale=0.9), "attention output with scale=0.9")


@pytest.mark.points(1)
def test_sdpa_explicit_scale_zero(impl):
    """``scale=0.0`` is a scale like any other (not 'not given'): all scores are 0, so the output is the mean of v."""
    q, k, v = qkv(2, T=3, S=5, d_k=8, seed=6)
    out = impl.call(SDPA, q, k, v, scale=0.0)
    close(out, v.mean(-2, keepdim=True).expand(2, 3, 8), "attention output with scale=0.0 (uniform weights)")
    close(impl.call(SDPA, q, k, v, scale=0.5), expected(q, k, v, scale=0.5), "attention output with scale=0.5")


@pytest.mark.points(1)
def test_sdpa_other_lengths_and_widths(impl):
    """T queries over S keys with d_v != d_k give (..., T, d_v)."""
    q, k, v = qkv(2, T=3, S=6, d_k=1, d_v=4, seed=3)
    out = expect_tensor(impl.call(SDPA, q, k, v, **ONE), "attention output", shape=(2, 3, 4))
    close(out, expected(q, k, v, scale=1.0), "attention output with T=3, S=6, d_k=1, d_v=4")


@pytest.mark.points(1)
def test_sdpa_any_leading_dims(impl):
    """Inputs (T, d), (B, T, d), (B, nh, T, d) and (A, B, nh, T, d) all work: only the last two axes are special."""
    for lead in [(), (3,), (2, 3), (2, 2, 3)]:
        q, k, v = qkv(*lead, T=4, S=6, d_k=1, d_v=3, seed=15)
        out = expect_tensor(impl.call(SDPA, q, k, v, **ONE), f"output for leading dims {lead}", shape=(*lead, 4, 3))
        close(out, expected(q, k, v, scale=1.0), f"attention output for leading dims {lead}")


@pytest.mark.points(1)
def test_sdpa_mismatched_shapes_are_errors(impl):
    """Queries and keys of different widths, or keys and values of different lengths, raise an error."""
    q, k, v = qkv(2, T=4, d_k=1, d_v=3)
    close(impl.call(SDPA, q, k, v, **ONE), expected(q, k, v, scale=1.0), "attention output for valid (B, T, d) inputs")
    _, k2, _ = qkv(2, T=4, d_k=2)
    for what, args in (("q of width 1 and k of width 2", (q, k2, v)),
                       ("k of length 4 and v of length 3", (q, k, v[:, :3]))):
        res = impl.outcome(SDPA, *args, **ONE)
        assert not res.ok, f"{what} must raise an error, but a result came back"
        assert res.error_type != "NotImplementedError", "the error must come from the mismatch, not a stub"


@pytest.mark.points(2)
def test_sdpa_returned_weights(impl):
    """``return_weights=True`` gives (output, weights), weights (..., T, S) in q's dtype; ``False`` only the output."""
    q, k, v = qkv(3, T=4, S=6, d_k=1, d_v=2, seed=10)
    res = impl.call(SDPA, q, k, v, return_weights=True, **ONE)
    assert isinstance(res, (tuple, list)) and len(res) == 2, \
        f"return_weights=True must return (output, weights), got {type(res).__name__}"
    out, w = res
    w = expect_tensor(w, "attention weights", shape=(3, 4, 6), dtype=torch.float64)
    close(w, torch.softmax(q @ k.transpose(-2, -1), dim=-1), "attention weights")
    close(out, expected(q, k, v, scale=1.0), "attention output (with return_weights=True)")
    expect_tensor(impl.call(SDPA, q, k, v, return_weights=False, **ONE), "the result with return_weights=False")
    qb, kb, vb = qkv(2, T=3, S=4, d_k=1, dtype=torch.bfloat16, seed=20)
    res = impl.call(SDPA, qb, kb, vb, return_weights=True, **ONE)
    expect_tensor(res[1] if isinstance(res, (tuple, list)) and len(res) == 2 else res, "weights for bfloat16 inputs",
                  dtype=torch.bfloat16)


# --- masks -------------------------------------------------------------------------------------------------

@pytest.mark.points(2)
def test_sdpa_boolean_mask(impl):
    """A boolean mask (True = may attend) of shape (T, S), (B, 1, 1, S) or (B, 1, T, S) matches PyTorch's attn_mask."""
    q, k, v = qkv(2, 3, T=5, S=7, d_k=1, seed=6)
    keep = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])[:, None, None, :]
    masks = {"(T, S)": random_mask(5, 7, seed=5), "(B, 1, 1, S)": keep, "(B, 1, T, S)": random_mask(2, 1, 5, 7)}
    for what, mask in masks.items():
        close(impl.call(SDPA, q, k, v, mask, **ONE), expected(q, k, v, mask, scale=1.0),
              f"attention output with a {what} boolean mask")


@pytest.mark.points(2)
def test_sdpa_is_causal(impl):
    """``is_causal=True`` lets query i see keys 0..i only (like mask=causal_mask(T)); ``is_causal=False`` does not."""
    q, k, v = qkv(3, T=6, d_k=1, seed=7)
    check_causal(impl, q, k, v, None, "attention output with is_causal=True")
    close(impl.call(SDPA, q, k, v, is_causal=False, **ONE), expected(q, k, v, scale=1.0),
          "attention output with is_causal=False (no causal mask)")


@pytest.mark.points(1)
def test_sdpa_is_causal_more_keys_than_queries(impl):
    """With S > T (cached keys) is_causal aligns the triangle bottom-right: the last query sees every key."""
    for T, S in [(3, 5), (1, 4)]:
        q, k, v = qkv(2, T=T, S=S, d_k=1, seed=8)
        check_causal(impl, q, k, v, None, f"attention output with is_causal=True, T={T}, S={S}")


@pytest.mark.points(1)
def test_sdpa_causal_and_mask_together(impl):
    """``is_causal=True`` and a padding mask are both applied (logical and)."""
    q, k, v = qkv(2, 2, T=5, d_k=1, seed=9)
    keep = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])[:, None, None, :]
    check_causal(impl, q, k, v, keep, "attention output with is_causal=True and a padding mask")


@pytest.mark.points(2)
def test_sdpa_fully_masked_rows_are_zero(impl):
    """A query whose keys are all masked (a padding query) gets zero weights and a zero output, not NaN."""
    q, k, v = qkv(2, T=4, S=4, d_k=1, seed=13)
    mask = random_mask(2, 4, 4, seed=3)
    mask[..., 2, :] = False
    out = expect_tensor(impl.call(SDPA, q, k, v, mask, **ONE), "attention output", shape=(2, 4, 1))
    assert_finite(out, "attention output with a fully masked query (row 2)")
    close(out, expected(q, k, v, mask, scale=1.0), "attention output with a fully masked query (row 2)")
    w = impl.call(SDPA, q, k, identity_values(2, S=4), mask, **ONE)
    close(w, expected(q, k, identity_values(2, S=4), mask, scale=1.0),
          "attention weights (the output for v = I) with a fully masked query (row 2)")


# --- numerics, dtypes, gradients ---------------------------------------------------------------------------------

@pytest.mark.points(2)
def test_sdpa_large_scores_are_stable(impl):
    """Scores in the thousands (float32) give finite outputs equal to the exact result (subtract the row maximum)."""
    q, k, v = qkv(2, T=5, S=6, d_k=1, dtype=torch.float32, size=40.0, seed=12)
    out = expect_tensor(impl.call(SDPA, q, k, v, **ONE), "attention output with large scores", shape=(2, 5, 1))
    assert_finite(out, "attention output with scores around 1e3")
    close(out, expected(q, k, v, scale=1.0), "attention output with large scores", rtol=1e-3, atol=1e-4)


@pytest.mark.points(2)
def test_sdpa_keeps_dtype(impl):
    """The output has the inputs' dtype: float64, float32, bfloat16 and float16 (softmax in float32, cast back)."""
    for dtype, tol in ((torch.float64, TOL), (torch.float32, TOL), (torch.bfloat16, {"rtol": 2e-2, "atol": 2e-2}),
                       (torch.float16, {"rtol": 5e-3, "atol": 5e-3})):
        q, k, v = qkv(2, T=5, d_k=1, dtype=dtype, seed=14)
        out = expect_tensor(impl.call(SDPA, q, k, v, **ONE), f"output for {dtype} inputs", shape=(2, 5, 1), dtype=dtype)
        close(out, expected(q, k, v, scale=1.0), f"attention output in {dtype}", **tol)


@pytest.mark.points(2)
def test_sdpa_gradients(impl):
    """Gradients w.r.t. q, k and v equal PyTorch's (float64, no mask)."""
    q, k, v = qkv(2, T=5, S=6, d_k=1, d_v=3, seed=16)
    g = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(17), dtype=torch.float64)
    res = impl.grad(SDPA, [q, k, v], ONE, grad_out=g)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    expected(*leaves, scale=1.0).backward(g)
    for name, got, leaf in zip("qkv", res.grads, leaves):
        assert got is not None, f"no gradient reached {name}: is the output detached from the inputs?"
        close(got, leaf.grad, f"gradient w.r.t. {name}")


@pytest.mark.points(1)
def test_sdpa_gradients_finite_with_fully_masked_rows(impl):
    """A fully masked (padding) query does not put NaN into the gradients, and the other gradients are right."""
    q, k, v = qkv(1, T=4, d_k=1, seed=18)
    mask = torch.ones(1, 4, 4, dtype=torch.bool)
    mask[..., 1, :] = False
    g = torch.ones(1, 4, 1, dtype=torch.float64)
    res = impl.grad(SDPA, [q, k, v, mask], ONE, grad_out=g)
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    expected(*leaves, mask, scale=1.0).backward(g)
    for name, got, leaf in zip("qkv", res.grads, leaves):
        got = expect_tensor(got, f"gradient w.r.t. {name}")
        assert_finite(got, f"gradient w.r.t. {name} with a fully masked query")
        close(got, leaf.grad, f"gradient w.r.t. {name} with a fully masked query")


# --- dropout -----------------------------------------------------------------------------------------------

@pytest.mark.points(2)
def test_sdpa_dropout_drops_and_rescales_the_weights(impl):
    """dropout_p=0.25 zeroes about a quarter of the attention weights and multiplies the rest by 1/(1 - p)."""
    p, S = 0.25, 16
    q, k, _ = qkv(16, T=16, S=S, d_k=1, seed=19)
    v = torch.cat([identity_values(16, S=S), torch.ones(16, S, 1, dtype=torch.float64)], dim=-1)  # [I | 1]
    out = expect_tensor(impl.call(SDPA, q, k, v, dropout_p=p, **ONE), "output with dropout_p=0.25",
                        shape=(16, 16, S + 1)).double()
    w, total = out[..., :S], out[..., S]  # the dropped-out weights, and their sum (what v's column of ones sees)
    kept = expected(q, k, identity_values(16, S=S), scale=1.0) / (1 - p)
    dropped = w == 0
    frac = float(dropped.double().mean())
    assert 0.2 < frac < 0.3, f"dropout_p=0.25 must drop about 25% of the attention weights, {100 * frac:.1f}% were zero"
    close(w[~dropped], kept[~dropped], "the weights that were kept (expected: weight / (1 - p))")
    close(total, w.sum(-1), "output of a value column of ones (must be the sum of the same dropped-out weights: "
                            "apply dropout to the weights before the product with v, not to the output)")


@pytest.mark.points(1)
def test_sdpa_dropout_zero_and_one(impl):
    """``dropout_p=0.0`` changes nothing; ``dropout_p=1.0`` drops every weight, so the output is zero (not NaN)."""
    q, k, v = qkv(2, T=3, d_k=1, seed=21)
    close(impl.call(SDPA, q, k, v, dropout_p=0.0, **ONE), expected(q, k, v, scale=1.0), "output with dropout_p=0.0")
    out = expect_tensor(impl.call(SDPA, q, k, v, dropout_p=1.0, **ONE), "output with dropout_p=1.0", shape=(2, 3, 1))
    assert_finite(out, "output with dropout_p=1.0")
    close(out, torch.zeros(2, 3, 1, dtype=torch.float64), "output with dropout_p=1.0")
