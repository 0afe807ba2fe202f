"""Chapter 4: loop-of-heads = batched MHA = nn.MultiheadAttention; cross-attention; KV cache."""
import pytest
import torch
from torch import nn

from tfmcourse import KVCache, MultiHeadAttention, MultiHeadAttentionLoop, RotaryEmbedding, causal_mask, padding_mask
from tfmcourse.interop import load_from_torch_mha, to_torch_mask
from tfmcourse.multihead import load_loop_into_batched

pytestmark = pytest.mark.ch04

D, H = 24, 4


def _pair(bias=True):
    loop = MultiHeadAttentionLoop(D, H, bias=bias).double()
    return loop, load_loop_into_batched(loop, MultiHeadAttention(D, H, bias=bias).double())


@pytest.mark.parametrize("bias", [True, False])
def test_loop_equals_batched(bias):
    loop, mha = _pair(bias)
    x = torch.randn(3, 5, D, dtype=torch.float64)
    assert torch.allclose(loop(x), mha(x), atol=1e-12)
    assert torch.allclose(loop(x, is_causal=True), mha(x, is_causal=True), atol=1e-12)
    ctx = torch.randn(3, 8, D, dtype=torch.float64)
    keep = padding_mask(torch.tensor([8, 2, 5]))
    assert torch.allclose(loop(x, ctx, mask=keep), mha(x, ctx, mask=keep), atol=1e-12)


@pytest.mark.parametrize("fused", [True, False])
def test_batched_equals_torch_mha_self_and_cross(fused):
    ref = nn.MultiheadAttention(D, H, batch_first=True).double().eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0, 0.3)
    mha = load_from_torch_mha(MultiHeadAttention(D, H, fused=fused).double(), ref)
    x = torch.randn(2, 6, D, dtype=torch.float64)
    keep = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    y_ref, w_ref = ref(x, x, x, key_padding_mask=to_torch_mask(keep), attn_mask=to_torch_mask(causal_mask(6)),
                       average_attn_weights=False)
    y, w = mha(x, mask=keep[:, None, None, :], is_causal=True, need_weights=True)
    assert torch.allclose(y, y_ref, atol=1e-10) and torch.allclose(w, w_ref, atol=1e-10)
    ctx = torch.randn(2, 9, D, dtype=torch.float64)
    y_ref, _ = ref(x, ctx, ctx)
    assert torch.allclose(mha(x, ctx), y_ref, atol=1e-10)


def test_heads_are_independent_column_blocks():
    loop, mha = _pair()
    x = torch.randn(1, 4, D, dtype=torch.float64)
    with torch.no_grad():
        loop.heads[2].v.weight.zero_()
        loop.heads[2].v.bias.zero_()
    load_loop_into_batched(loop, mha)
    _, w = mha(x, need_weights=True)
    assert w.shape == (1, H, 4, 4)
    concat = torch.cat([h(x) for h in loop.heads], -1)  # head 2's slice of the concat is zero
    assert torch.all(concat[..., 2 * D // H:3 * D // H] == 0)
    assert torch.allclose(mha(x), loop.proj(concat))


@pytest.mark.parametrize("use_rope", [False, True])
def test_kv_cache_matches_full_recompute(use_rope):
    mha = MultiHeadAttention(D, H).double().eval()
    rope = RotaryEmbedding(D // H, 32).double() if use_rope else None
    x = torch.randn(2, 9, D, dtype=torch.float64)
    full = mha(x, is_causal=True, rope=rope)
    cache = KVCache()
    parts = [mha(x[:, :4], is_causal=True, cache=cache, rope=rope)]  # a prompt of 4 tokens...
    parts += [mha(x[:, t:t + 1], is_causal=True, cache=cache, rope=rope) for t in range(4, 7)]  # ...one at a time
    parts += [mha(x[:, 7:9], is_causal=True, cache=cache, rope=rope)]  # ...and a chunk of 2
    assert len(cache) == 9
    assert torch.allclose(torch.cat(parts, 1), full, atol=1e-10)


def test_rejects_bad_head_count():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttentionLoop(10, 4)
