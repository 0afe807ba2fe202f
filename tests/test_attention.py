"""Chapter 3: scaled dot-product attention and masks."""
import math

import pytest
import torch
import torch.nn.functional as F

from tfmcourse import causal_mask, combine_masks, padding_mask, scaled_dot_product_attention
from tfmcourse.attention import attention

pytestmark = pytest.mark.ch03


def _qkv(B=2, H=3, T=5, S=7, d=8, dtype=torch.float64):
    return (torch.randn(B, H, T, d, dtype=dtype), torch.randn(B, H, S, d, dtype=dtype),
            torch.randn(B, H, S, d, dtype=dtype))


def test_matches_formula_by_hand():
    q, k, v = _qkv(B=1, H=1, T=2, S=3, d=4)
    w = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1)  # sqrt(4) = 2
    out, weights = scaled_dot_product_attention(q, k, v, return_weights=True)
    assert torch.allclose(weights, w) and torch.allclose(out, w @ v)
    assert torch.allclose(weights.sum(-1), torch.ones(1, 1, 2, dtype=torch.float64))


@pytest.mark.parametrize("kind", ["none", "causal", "padding", "random", "causal+padding"])
@pytest.mark.parametrize("fused", [False, True])
def test_equals_torch_sdpa(kind, fused):
    T = S = 6
    q, k, v = _qkv(T=T, S=S)
    mask, is_causal = None, False
    if kind in ("causal", "causal+padding"):
        is_causal = True
    if kind in ("padding", "causal+padding"):
        mask = padding_mask(torch.tensor([6, 3]), S)
    if kind == "random":
        mask = torch.rand(2, 1, T, S) > 0.4
        mask[..., 0] = True  # every query keeps at least one key
    ref_mask = combine_masks(mask, causal_mask(T, S) if is_causal else None)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=ref_mask)
    out = attention(q, k, v, mask, is_causal=is_causal, fused=fused)
    assert torch.allclose(out, ref, atol=1e-10)


def test_fully_masked_rows_are_zero_not_nan():
    q, k, v = _qkv(T=3, S=4)
    mask = torch.ones(3, 4, dtype=torch.bool)
    mask[1] = False
    for fused in (False, True):
        out = attention(q, k, v, mask, fused=fused)
        assert not out.isnan().any()
        assert torch.all(out[:, :, 1] == 0)
    _, w = scaled_dot_product_attention(q, k, v, mask, return_weights=True)
    assert torch.all(w[:, :, 1] == 0) and not w.isnan().any()


def test_scaling_keeps_softmax_from_saturating():
    d = 512
    q, k = torch.randn(1, 1, 16, d), torch.randn(1, 1, 16, d)
    _, w = scaled_dot_product_attention(q, k, k, return_weights=True)
    _, w_unscaled = scaled_dot_product_attention(q, k, k, scale=1.0, return_weights=True)
    assert w.max(-1).values.mean() < 0.5 < w_unscaled.max(-1).values.mean()


def test_large_scores_stay_finite_in_half_precision():
    q = torch.randn(1, 2, 4, 8, dtype=torch.bfloat16) * 300
    out = scaled_dot_product_attention(q, q, q)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_causal_mask_semantics():
    m = causal_mask(3)
    assert m.dtype == torch.bool and torch.equal(m, torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool))
    # with a cache: 2 new queries at positions 3 and 4 of 5 keys
    assert torch.equal(causal_mask(2, 5), torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], dtype=torch.bool))


def test_padding_mask_shape_and_meaning():
    m = padding_mask(torch.tensor([2, 4]))
    assert m.shape == (2, 1, 1, 4)
    assert m[0, 0, 0].tolist() == [True, True, False, False] and m[1].all()


def test_causality_future_keys_do_not_change_past_outputs():
    q, k, v = _qkv(T=6, S=6)
    out = scaled_dot_product_attention(q, k, v, is_causal=True)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 4:] += 5
    v2[:, :, 4:] -= 3
    out2 = scaled_dot_product_attention(q, k2, v2, is_causal=True)
    assert torch.allclose(out[:, :, :4], out2[:, :, :4]) and not torch.allclose(out[:, :, 4:], out2[:, :, 4:])


def test_gradients_match_torch():
    q, k, v = (t.requires_grad_() for t in _qkv(T=4, S=4))
    q2, k2, v2 = (t.detach().clone().requires_grad_() for t in (q, k, v))
    g = torch.randn(2, 3, 4, 8, dtype=torch.float64)
    scaled_dot_product_attention(q, k, v, is_causal=True).backward(g)
    F.scaled_dot_product_attention(q2, k2, v2, is_causal=True).backward(g)
    for a, b in ((q, q2), (k, k2), (v, v2)):
        assert torch.allclose(a.grad, b.grad, atol=1e-10)
    assert torch.autograd.gradcheck(lambda a, b, c: scaled_dot_product_attention(a, b, c),
                                    tuple(t.detach()[:1, :1].requires_grad_() for t in (q, k, v)))


def test_default_scale_is_inverse_sqrt_dk():
    q, k, v = _qkv(d=16)
    assert torch.allclose(scaled_dot_product_attention(q, k, v),
                          scaled_dot_product_attention(q, k, v, scale=1 / math.sqrt(16)))
