"""Hidden suite, chapter 4: multi-head attention (a loop of heads, the batched module) and the KV cache.

Interface: ``AttentionHead(d_model, head_dim, *, bias=True)`` (sub-modules ``q``, ``k``, ``v``),
``MultiHeadAttentionLoop(d_model, n_heads, *, bias=True)`` (``heads``, ``proj``),
``MultiHeadAttention(d_model, n_heads, *, bias=True, dropout=0.0, fused=True)`` (``qkv`` = [W_Q; W_K; W_V]
stacked like ``nn.MultiheadAttention.in_proj_weight``, ``proj``) with ``forward(x, context=None, *, mask=None,
is_causal=False, cache=None, rope=None, need_weights=False)``, and ``KVCache()`` (``update(k, v)``,
``len()``, ``k``, ``v``). Masks are boolean, True = may attend.

Every expected value is computed here, in the grader: with ``nn.MultiheadAttention`` holding the same
weights, ``F.scaled_dot_product_attention`` in float64, and the reference ``RotaryEmbedding``. The weights
are drawn in float32 (so loading them into a float32 module and converting it to float64 loses nothing).
"""
from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tfmcourse.embedding import RotaryEmbedding as RefRotaryEmbedding
from tfmcourse.grading.checks import assert_close, expect_tensor
from tfmcourse.grading.impl import Ref, attr, call, obj_spec
from tfmcourse.grading.wire import MissingName, StudentError
from tfmcourse.multihead import MultiHeadAttention as RefMultiHeadAttention

pytestmark = [pytest.mark.ch04]
HEAD, LOOP, MHA, CACHE = "AttentionHead", "MultiHeadAttentionLoop", "MultiHeadAttention", "KVCache"
D, H = 16, 4
HS = D // H
F64 = torch.float64


# --- helpers (all run in the grader) ------------------------------------------------------------------------

def rand(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    """Random float64 values that are exactly representable in float32."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g) * scale).double()


def torch_mha(d_model: int = D, n_heads: int = H, *, bias: bool = True, seed: int = 0):
    """``nn.MultiheadAttention`` (float64, eval) with random weights, and the same weights in our names."""
    ref = nn.MultiheadAttention(d_model, n_heads, bias=bias, batch_first=True).double().eval()
    state = {"qkv.weight": rand(3 * d_model, d_model, seed=seed, scale=0.3),
             "proj.weight": rand(d_model, d_model, seed=seed + 1, scale=0.3)}
    if bias:
        state["qkv.bias"] = rand(3 * d_model, seed=seed + 2, scale=0.3)
        state["proj.bias"] = rand(d_model, seed=seed + 3, scale=0.3)
    load_torch(ref, state)
    return ref, state


def load_torch(ref: nn.MultiheadAttention, state: dict) -> None:
    with torch.no_grad():
        ref.in_proj_weight.copy_(state["qkv.weight"])
        ref.out_proj.weight.copy_(state["proj.weight"])
        if "qkv.bias" in state:
            ref.in_proj_bias.copy_(state["qkv.bias"])
            ref.out_proj.bias.copy_(state["proj.bias"])


def run_torch(ref: nn.MultiheadAttention, x, context=None, *, keep=None, causal=False, weights=False):
    """Output (and per-head weights) of ``ref``; ``keep`` is a (B, S) key mask, True = may attend."""
    context = x if context is None else context
    T, S = x.size(1), context.size(1)
    attn_mask = ~torch.ones(T, S, dtype=torch.bool).tril(S - T) if causal else None
    with torch.no_grad():
        y, w = ref(x, context, context, key_padding_mask=None if keep is None else ~keep, attn_mask=attn_mask,
                   need_weights=True, average_attn_weights=False)
    return (y, w) if weights else y


def loop_state(state: dict, d_model: int = D, n_heads: int = H) -> dict:
    """The fused ``qkv`` layout cut into per-head ``q``/``k``/``v`` matrices (the inverse of
    ``load_loop_into_batched``): rows ``i*hs:(i+1)*hs`` of W_Q are head ``i``'s query projection."""
    hs, out = d_model // n_heads, {}
    for j, name in enumerate("qkv"):
        w = state["qkv.weight"][j * d_model:(j + 1) * d_model]
        b = state["qkv.bias"][j * d_model:(j + 1) * d_model] if "qkv.bias" in state else None
        for i in range(n_heads):
            out[f"heads.{i}.{name}.weight"] = w[i * hs:(i + 1) * hs].clone()
            if b is not None:
                out[f"heads.{i}.{name}.bias"] = b[i * hs:(i + 1) * hs].clone()
    out["proj.weight"] = state["proj.weight"]
    if "proj.bias" in state:
        out["proj.bias"] = state["proj.bias"]
    return out


def head_state(seed: int, bias: bool = True) -> dict:
    out = {}
    for j, name in enumerate("qkv"):
        out[f"{name}.weight"] = rand(HS, D, seed=seed + 2 * j, scale=0.4)
        if bias:
            out[f"{name}.bias"] = rand(HS, seed=seed + 2 * j + 1, scale=0.4)
    return out


def head_expected(state: dict, x, context=None, *, keep=None, causal=False) -> torch.Tensor:
    context = x if context is None else context
    q = F.linear(x, state["q.weight"], state.get("q.bias"))
    k = F.linear(context, state["k.weight"], state.get("k.bias"))
    v = F.linear(context, state["v.weight"], state.get("v.bias"))
    T, S = q.size(1), k.size(1)
    mask = torch.ones(x.size(0), T, S, dtype=torch.bool)
    if keep is not None:
        mask = mask & keep[:, None, :]
    if causal:
        mask = mask & torch.ones(T, S, dtype=torch.bool).tril(S - T)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def lengths_mask(lengths: list[int], S: int) -> torch.Tensor:
    """(B, S) bool, True at the first ``lengths[b]`` positions."""
    return torch.arange(S)[None, :] < torch.tensor(lengths)[:, None]


def as_padding(keep: torch.Tensor) -> torch.Tensor:
    """(B, S) -> (B, 1, 1, S): the course's key-padding mask layout."""
    return keep[:, None, None, :]


def need_helper(impl, name: str, module: str) -> None:
    """Helper classes (not graded) that a scenario builds inside the implementation must be in its namespace:
    a notebook imports them (``from tfmcourse.embedding import RotaryEmbedding``). The in-process reference
    namespace holds only interface names, so the reference's class is added there (to the reference only: a
    notebook graded in-process must import it, as in the sandbox)."""
    ns = getattr(impl, "ns", None)
    if isinstance(ns, dict) and name not in ns and ns.get(MHA) is RefMultiHeadAttention:
        ns[name] = getattr(importlib.import_module(module), name)


def fwd(impl, name: str, init_args: tuple, state: dict, *args, dtype=F64, **kwargs):
    """Build ``name(*init_args)``, load ``state``, convert to ``dtype`` and run one forward call."""
    return impl.run_module(name, init_args, {}, state, [call("forward", *args, **kwargs)], dtype=dtype).output


def expect_error(impl, name: str, init_args: tuple, what: str, error: str = "ValueError") -> None:
    try:
        impl.run_module(name, init_args, {}, calls=[attr("training")])
    except StudentError as e:
        assert e.type_name == error, f"{what} must raise {error}, got {e.type_name}: {e.message}"
        return
    raise AssertionError(f"{what} must raise {error}, but the module was built")


# --- AttentionHead ------------------------------------------------------------------------------------------

@pytest.mark.points(1)
def test_attention_head_parameters(impl):
    """AttentionHead(d_model, head_dim) has q, k, v projections d_model -> head_dim (no bias with bias=False)."""
    want = {f"{n}.{p}": ((HS, D) if p == "weight" else (HS,)) for n in "qkv" for p in ("weight", "bias")}
    assert impl.param_shapes(HEAD, (D, HS)) == want, \
        "AttentionHead parameters: expected q, k, v = nn.Linear(d_model, head_dim)"
    want_nb = {k: v for k, v in want.items() if k.endswith("weight")}
    assert impl.param_shapes(HEAD, (D, HS), {"bias": False}) == want_nb, "AttentionHead(bias=False) must have no biases"


@pytest.mark.points(2)
def test_attention_head_self_attention(impl):
    """One head: softmax(q(x) k(x)^T / sqrt(head_dim)) v(x), shape (B, T, head_dim)."""
    state, x = head_state(10), rand(2, 5, D, seed=11)
    out = fwd(impl, HEAD, (D, HS), state, x)
    out = expect_tensor(out, "AttentionHead output", shape=(2, 5, HS))
    assert_close(out, head_expected(state, x), "AttentionHead self-attention output")


@pytest.mark.points(1)
def test_attention_head_cross_attention_masks(impl):
    """A head attends from x to a context of another length; a (B, 1, 1, S) padding mask and is_causal apply."""
    state, x, ctx = head_state(20), rand(2, 4, D, seed=21), rand(2, 6, D, seed=22)
    keep = lengths_mask([6, 3], 6)
    res = impl.run_module(HEAD, (D, HS), {}, state, [call("forward", x, ctx, mask=as_padding(keep)),
                                                    call("forward", ctx, is_causal=True)], dtype=F64)
    assert_close(res.outputs[0], head_expected(state, x, ctx, keep=keep),
                 "AttentionHead cross-attention with a padding mask")
    assert_close(res.outputs[1], head_expected(state, ctx, causal=True), "AttentionHead with is_causal=True")


# --- MultiHeadAttentionLoop ---------------------------------------------------------------------------------

@pytest.mark.points(1)
def test_loop_parameters(impl):
    """MultiHeadAttentionLoop has n_heads AttentionHeads of width d_model/n_heads in ``heads`` and a ``proj``."""
    _, state = torch_mha()
    want = {k: tuple(v.shape) for k, v in loop_state(state).items()}
    assert impl.param_shapes(LOOP, (D, H)) == want, \
        "MultiHeadAttentionLoop parameters: expected heads.{i}.q/k/v (head_dim x d_model) and proj (d_model x d_model)"


@pytest.mark.points(2)
def test_loop_matches_torch(impl):
    """Concat(head_1 .. head_h) W_O over the heads equals nn.MultiheadAttention with the same weights."""
    ref, state = torch_mha(seed=30)
    x = rand(2, 5, D, seed=31)
    out = fwd(impl, LOOP, (D, H), loop_state(state), x)
    assert_close(expect_tensor(out, "MultiHeadAttentionLoop output", shape=(2, 5, D)), run_torch(ref, x),
                 "MultiHeadAttentionLoop output (head i uses rows i*hs:(i+1)*hs of W_Q, W_K, W_V)")


@pytest.mark.points(2)
def test_loop_cross_attention_padding_and_causal(impl):
    """The loop handles cross-attention with a key-padding mask, and is_causal, like nn.MultiheadAttention."""
    ref, state = torch_mha(seed=40)
    x, ctx = rand(2, 4, D, seed=41), rand(2, 7, D, seed=42)
    keep = lengths_mask([7, 2], 7)
    res = impl.run_module(LOOP, (D, H), {}, loop_state(state), [call("forward", x, ctx, mask=as_padding(keep)),
                                                                call("forward", x, is_causal=True)], dtype=F64)
    assert_close(res.outputs[0], run_torch(ref, x, ctx, keep=keep),
                 "MultiHeadAttentionLoop cross-attention with padding")
    assert_close(res.outputs[1], run_torch(ref, x, causal=True), "MultiHeadAttentionLoop with is_causal=True")


@pytest.mark.points(2)
def test_loop_equals_batched_with_mapped_weights(impl):
    """The loop and the batched module compute the same thing once the per-head weights are stacked into qkv."""
    ref, state = torch_mha(seed=50)
    x = rand(3, 5, D, seed=51)
    keep = lengths_mask([5, 4, 2], 5)
    kw = {"mask": as_padding(keep), "is_causal": True}
    loop = impl.run_module(LOOP, (D, H), {}, loop_state(state), [call("forward", x, **kw)], dtype=F64).output
    fused = impl.run_module(MHA, (D, H), {}, state, [call("forward", x, **kw)], dtype=F64).output
    want = run_torch(ref, x, keep=keep, causal=True)
    assert_close(loop, want, "MultiHeadAttentionLoop output (causal + padding)")
    assert_close(fused, loop, "MultiHeadAttention output vs MultiHeadAttentionLoop output with the same weights")


# --- MultiHeadAttention -------------------------------------------------------------------------------------

@pytest.mark.points(1)
def test_mha_parameters(impl):
    """MultiHeadAttention has a fused ``qkv`` Linear(d_model, 3*d_model) and ``proj``; bias=False drops biases."""
    want = {"qkv.weight": (3 * D, D), "qkv.bias": (3 * D,), "proj.weight": (D, D), "proj.bias": (D,)}
    assert impl.param_shapes(MHA, (D, H)) == want, \
        "MultiHeadAttention parameters: expected qkv (3*d_model x d_model) and proj"
    assert impl.param_shapes(MHA, (D, H), {"bias": False}) == {"qkv.weight": (3 * D, D), "proj.weight": (D, D)}, \
        "MultiHeadAttention(bias=False) must have no biases"


@pytest.mark.points(2)
def test_mha_self_attention_matches_torch(impl):
    """Self-attention equals nn.MultiheadAttention with in_proj_weight = qkv.weight, out_proj = proj."""
    ref, state = torch_mha(seed=60)
    x = rand(2, 6, D, seed=61)
    out = fwd(impl, MHA, (D, H), state, x)
    assert_close(expect_tensor(out, "MultiHeadAttention output", shape=(2, 6, D)), run_torch(ref, x),
                 "MultiHeadAttention self-attention output")


@pytest.mark.points(2)
def test_mha_causal_and_key_padding(impl):
    """is_causal=True and a (B, 1, 1, T) key-padding mask are both applied, as in nn.MultiheadAttention."""
    ref, state = torch_mha(seed=70)
    x = rand(2, 6, D, seed=71)
    keep = lengths_mask([6, 4], 6)
    res = impl.run_module(MHA, (D, H), {}, state, [call("forward", x, is_causal=True),
                                                   call("forward", x, mask=as_padding(keep), is_causal=True)],
                          dtype=F64)
    assert_close(res.outputs[0], run_torch(ref, x, causal=True), "MultiHeadAttention output with is_causal=True")
    assert_close(res.outputs[1], run_torch(ref, x, keep=keep, causal=True),
                 "MultiHeadAttention output with is_causal=True and a padding mask")


@pytest.mark.points(2)
def test_mha_returns_per_head_weights(impl):
    """need_weights=True returns (output, weights) with per-head weights (B, n_heads, T, S)."""
    ref, state = torch_mha(seed=80)
    x = rand(2, 5, D, seed=81)
    keep = lengths_mask([5, 3], 5)
    res = fwd(impl, MHA, (D, H), state, x, mask=as_padding(keep), is_causal=True, need_weights=True)
    assert isinstance(res, (tuple, list)) and len(res) == 2, \
        f"need_weights=True must return (output, weights), got {type(res).__name__}"
    want_y, want_w = run_torch(ref, x, keep=keep, causal=True, weights=True)
    expect_tensor(res[1], "attention weights", shape=(2, H, 5, 5))
    assert_close(res[1], want_w, "per-head attention weights (nn.MultiheadAttention, average_attn_weights=False)")
    assert_close(res[0], want_y, "output with need_weights=True")


@pytest.mark.points(2)
def test_mha_cross_attention(impl):
    """Cross-attention: queries from x (B, T, d), keys and values from context (B, S, d), memory padding masked."""
    ref, state = torch_mha(seed=90)
    x, ctx = rand(2, 3, D, seed=91), rand(2, 7, D, seed=92)
    keep = lengths_mask([7, 4], 7)
    res = impl.run_module(MHA, (D, H), {}, state, [call("forward", x, ctx),
                                                   call("forward", x, ctx, mask=as_padding(keep), need_weights=True)],
                          dtype=F64)
    out = expect_tensor(res.outputs[0], "cross-attention output", shape=(2, 3, D))
    assert_close(out, run_torch(ref, x, ctx), "cross-attention output (W_Q on x, W_K and W_V on context)")
    want_y, want_w = run_torch(ref, x, ctx, keep=keep, weights=True)
    assert_close(res.outputs[1][1], want_w, "cross-attention weights with a padding mask (B, n_heads, T, S)")
    assert_close(res.outputs[1][0], want_y, "cross-attention output with a padding mask")


@pytest.mark.points(1)
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "manual"])
def test_mha_fused_and_manual_paths_agree(impl, fused):
    """fused=True (PyTorch's kernel) and fused=False (the written-out path) both give the right answer."""
    ref, state = torch_mha(seed=100)
    x, ctx = rand(2, 5, D, seed=101), rand(2, 6, D, seed=102)
    keep, ckeep = lengths_mask([5, 3], 5), lengths_mask([6, 2], 6)
    res = impl.run_module(MHA, (D, H), {"fused": fused}, state,
                          [call("forward", x, mask=as_padding(keep), is_causal=True),
                           call("forward", x, ctx, mask=as_padding(ckeep))], dtype=F64)
    assert_close(res.outputs[0], run_torch(ref, x, keep=keep, causal=True), f"fused={fused}: causal + padding output")
    assert_close(res.outputs[1], run_torch(ref, x, ctx, keep=ckeep), f"fused={fused}: cross-attention with padding")


@pytest.mark.points(1)
def test_mha_without_bias(impl):
    """bias=False matches nn.MultiheadAttention(bias=False) (self- and cross-attention)."""
    ref, state = torch_mha(bias=False, seed=110)
    x, ctx = rand(2, 4, D, seed=111), rand(2, 5, D, seed=112)
    res = impl.run_module(MHA, (D, H), {"bias": False}, state, [call("forward", x), call("forward", x, ctx)], dtype=F64)
    assert_close(res.outputs[0], run_torch(ref, x), "bias=False self-attention output")
    assert_close(res.outputs[1], run_torch(ref, x, ctx), "bias=False cross-attention output")


@pytest.mark.points(2)
def test_mha_heads_are_independent(impl):
    """Heads are independent: when proj reads head 1 only, changing the other heads' weights changes nothing.

    Head i uses only rows i*hs:(i+1)*hs of W_Q, W_K, W_V and feeds only columns i*hs:(i+1)*hs of proj."""
    ref, state = torch_mha(seed=120)
    keep_cols = torch.zeros(D, dtype=torch.bool)
    keep_cols[HS:2 * HS] = True
    state["proj.weight"] = state["proj.weight"] * keep_cols[None, :]
    other = dict(state)
    rows = torch.ones(3 * D, dtype=torch.bool)
    for j in range(3):
        rows[j * D + HS:j * D + 2 * HS] = False  # head 1's rows stay, the other heads' rows change
    other["qkv.weight"] = torch.where(rows[:, None], rand(3 * D, D, seed=121), state["qkv.weight"])
    other["qkv.bias"] = torch.where(rows, rand(3 * D, seed=122), state["qkv.bias"])
    x = rand(2, 5, D, seed=123)
    load_torch(ref, state)
    a = fwd(impl, MHA, (D, H), state, x)
    b = fwd(impl, MHA, (D, H), other, x)
    assert_close(a, run_torch(ref, x), "output when proj reads head 1 only")
    assert_close(b, a, "output after changing the weights of heads 0, 2, 3 only (proj reads head 1): heads must "
                       "not mix, split with view(B, T, nh, hs).transpose(1, 2)")


@pytest.mark.points(1)
def test_bad_head_count_raises(impl):
    """n_heads must divide d_model: MultiHeadAttention(10, 3) and MultiHeadAttentionLoop(10, 4) raise ValueError."""
    expect_error(impl, MHA, (10, 3), "MultiHeadAttention(10, 3)")
    expect_error(impl, LOOP, (10, 4), "MultiHeadAttentionLoop(10, 4)")
    assert impl.param_shapes(MHA, (12, 3))["qkv.weight"] == (36, 12), "MultiHeadAttention(12, 3) must be accepted"


@pytest.mark.points(2)
def test_mha_gradients(impl):
    """Gradients w.r.t. the input and every parameter equal nn.MultiheadAttention's (causal + padding)."""
    ref, state = torch_mha(seed=130)
    x = rand(2, 5, D, seed=131)
    keep = lengths_mask([5, 3], 5)
    g = rand(2, 5, D, seed=132)
    res = impl.run_module(MHA, (D, H), {}, state, [call("forward", x, mask=as_padding(keep), is_causal=True)],
                          backward=g, dtype=F64)
    xl = x.clone().requires_grad_()
    y, _ = ref(xl, xl, xl, key_padding_mask=~keep, attn_mask=~torch.ones(5, 5, dtype=torch.bool).tril(),
               need_weights=False)
    y.backward(g)
    assert res.input_grads and res.input_grads[0] is not None, "no gradient reached the input x"
    assert_close(res.input_grads[0], xl.grad, "gradient w.r.t. x")
    names = {"qkv.weight": ref.in_proj_weight, "qkv.bias": ref.in_proj_bias, "proj.weight": ref.out_proj.weight,
             "proj.bias": ref.out_proj.bias}
    for name, p in names.items():
        got = res.param_grads.get(name)
        assert got is not None, f"no gradient reached {name}"
        assert_close(got, p.grad, f"gradient w.r.t. {name}")


@pytest.mark.points(1)
def test_mha_float32(impl):
    """A float32 module on float32 input returns float32 equal to the float64 result within float32 precision."""
    ref, state = torch_mha(seed=140)
    x = rand(2, 5, D, seed=141)
    out = fwd(impl, MHA, (D, H), {k: v.float() for k, v in state.items()}, x.float(), is_causal=True,
              dtype=torch.float32)
    out = expect_tensor(out, "float32 output", shape=(2, 5, D), dtype=torch.float32)
    assert_close(out, run_torch(ref, x, causal=True).float(), "float32 output", rtol=1e-4, atol=1e-5)


# --- KV cache -----------------------------------------------------------------------------------------------

@pytest.mark.points(2)
def test_kv_cache_update_appends_along_time(impl):
    """KVCache.update appends (B, nh, T, hs) keys/values on the time axis and returns them all; len() counts tokens."""
    k1, v1 = rand(2, H, 3, HS, seed=150), rand(2, H, 3, HS, seed=151)
    k2, v2 = rand(2, H, 1, HS, seed=152), rand(2, H, 1, HS, seed=153)
    res = impl.run_module(CACHE, (), {}, calls=[call("__len__"), call("update", k1, v1), call("update", k2, v2),
                                                call("__len__"), attr("k"), attr("v")])
    n0, first, second, n, k, v = res.outputs
    assert n0 == 0, f"len() of an empty cache must be 0, got {n0}"
    assert isinstance(second, (tuple, list)) and len(second) == 2, "update(k, v) must return (k_all, v_all)"
    assert_close(first[0], k1, "keys returned by the first update")
    assert_close(second[0], torch.cat([k1, k2], dim=2),
                 "keys returned by the second update (appended on the time axis)")
    assert_close(second[1], torch.cat([v1, v2], dim=2), "values returned by the second update")
    assert n == 4, f"len() after caching 3 + 1 tokens must be 4, got {n}"
    assert_close(k, torch.cat([k1, k2], dim=2), "cache.k after two updates")
    assert_close(v, torch.cat([v1, v2], dim=2), "cache.v after two updates")


def _incremental_calls(x, **kw) -> list[dict]:
    """A prompt of 4 tokens, then 3 tokens one at a time, then a chunk of 2 (9 in all), all causal."""
    steps = [(0, 4), (4, 5), (5, 6), (6, 7), (7, 9)]
    return [call("forward", x[:, a:b], is_causal=True, cache=Ref("cache"), **kw) for a, b in steps]


@pytest.mark.points(3)
def test_kv_cache_generation_equals_full_recompute(impl):
    """Generation with a KVCache (prompt, single tokens, a chunk) equals causal attention over the whole sequence.

    The cache then holds all 9 tokens' keys and values, (B, n_heads, 9, head_dim)."""
    ref, state = torch_mha(seed=160)
    x = rand(2, 9, D, seed=161)
    res = impl.run_module(MHA, (D, H), {}, state, [*_incremental_calls(x), call("__len__", target="cache"),
                                                   attr("k", target="cache"), attr("v", target="cache")],
                          dtype=F64, objects={"cache": obj_spec(CACHE)})
    parts, (n, k, v) = res.outputs[:5], res.outputs[5:]
    want = run_torch(ref, x, causal=True)
    for (a, b), got in zip([(0, 4), (4, 5), (5, 6), (6, 7), (7, 9)], parts):
        got = expect_tensor(got, f"output for tokens {a}..{b - 1}", shape=(2, b - a, D))
        assert_close(got, want[:, a:b], f"output for tokens {a}..{b - 1} with the cache (vs the full causal output)")
    assert n == 9, f"len(cache) after 9 tokens must be 9, got {n}"
    heads = lambda t: t.view(2, 9, H, HS).transpose(1, 2)  # noqa: E731
    assert_close(k, heads(F.linear(x, state["qkv.weight"][D:2 * D], state["qkv.bias"][D:2 * D])),
                 "cache.k (the keys of all tokens, heads split)")
    assert_close(v, heads(F.linear(x, state["qkv.weight"][2 * D:], state["qkv.bias"][2 * D:])),
                 "cache.v (the values of all tokens, heads split)")


def rope_expected(state: dict, x: torch.Tensor, rope: RefRotaryEmbedding) -> torch.Tensor:
    B, T, _ = x.shape
    q, k, v = F.linear(x, state["qkv.weight"], state["qkv.bias"]).split(D, dim=2)
    q, k, v = (t.view(B, T, H, HS).transpose(1, 2) for t in (q, k, v))
    q, k = rope(q, k)
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, D)
    return F.linear(y, state["proj.weight"], state["proj.bias"])


def _rope_objects(impl) -> dict:
    need_helper(impl, "RotaryEmbedding", "tfmcourse.embedding")
    return {"cache": obj_spec(CACHE), "rope": obj_spec("RotaryEmbedding", HS, 32)}


def _run_rope(impl, *args, **kwargs):
    try:
        return impl.run_module(*args, **kwargs)
    except MissingName as e:
        if "RotaryEmbedding" in str(e):
            raise AssertionError("RotaryEmbedding is not in the notebook: the RoPE tests build one with it "
                                 "(keep `from tfmcourse.embedding import RotaryEmbedding`)") from None
        raise


@pytest.mark.points(1)
def test_rope_rotates_queries_and_keys(impl):
    """rope=RotaryEmbedding(head_dim, max_len) rotates q and k (after the heads are split) at positions 0..T-1."""
    ref_rope = RefRotaryEmbedding(HS, 32).double()
    _, state = torch_mha(seed=170)
    x = rand(2, 6, D, seed=171)
    res = _run_rope(impl, MHA, (D, H), {}, state, [call("double", target="rope"),
                                                   call("forward", x, is_causal=True, rope=Ref("rope"))],
                    dtype=F64, objects=_rope_objects(impl))
    assert_close(res.outputs[1], rope_expected(state, x, ref_rope), "causal output with RoPE")


@pytest.mark.points(2)
def test_kv_cache_with_rope(impl):
    """With RoPE and a KVCache, new tokens are rotated at their true positions (offset = tokens cached).

    Generation then equals the full causal recompute with RoPE."""
    ref_rope = RefRotaryEmbedding(HS, 32).double()
    _, state = torch_mha(seed=180)
    x = rand(2, 9, D, seed=181)
    res = _run_rope(impl, MHA, (D, H), {}, state,
                    [call("double", target="rope"), *_incremental_calls(x, rope=Ref("rope"))],
                    dtype=F64, objects=_rope_objects(impl))
    got = torch.cat([expect_tensor(p, "output with cache and RoPE") for p in res.outputs[1:]], dim=1)
    assert_close(got, rope_expected(state, x, ref_rope), "outputs of prompt + tokens with cache and RoPE "
                                                         "(vs the full causal output with RoPE)")
