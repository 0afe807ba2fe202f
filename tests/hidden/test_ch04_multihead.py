"""Hidden suite, chapter 4: multi-head attention (a loop of heads, the batched module) and the KV cache.

Interface: ``AttentionHead(d_model, head_dim, *, bias=True)`` (sub-modules ``q``, ``k``, ``v``),
``MultiHeadAttentionLoop(d_model, n_heads, *, bias=True)`` (``heads``, ``proj``),
``MultiHeadAttention(d_model, n_heads, *, bias=True, dropout=0.0, fused=True)`` (``qkv`` = [W_Q; W_K; W_V]
stacked like ``nn.MultiheadAttention.in_proj_weight``, ``proj``; attributes ``keep_weights``, ``last_weights``)
with ``forward(x, context=None, *, mask=None, is_causal=False, cache=None, rope=None, need_weights=False)``, and
``KVCache()`` (``update(k, v)``, ``len()``, ``k``, ``v``). Masks are boolean, True = may attend. (The package's
optional ``n_kv_heads`` argument, grouped-query attention, is not part of the exercise and is not graded.)

One idea per test. The core computation of ``MultiHeadAttention`` (which third of ``qkv`` is which, the head
split, the 1/sqrt(head_dim) scale, ``proj``) is graded against ``nn.MultiheadAttention`` by a few tests;
the tests of the other ideas (masks, causal, weights, paths, bias, dtypes, dropout, gradients, the cache)
compare the implementation with *itself* under a property that holds whatever its core computes:
a padding mask equals deleting the padded tokens, causal attention at token t equals attention over the
prefix up to t, the cache equals recomputing, gradients equal finite differences of its own forward, and
so on. Those tests also check that attention mixes tokens at all (a module returning its input earns
nothing). Where a test must see inside, ``proj`` is the identity, so a wrong ``proj`` does not leak in.

Every expected value is computed here, in the grader: with ``nn.MultiheadAttention`` holding the same
weights, ``F.scaled_dot_product_attention`` in float64, the reference ``RotaryEmbedding``, or the
implementation's own outputs under the property a test checks. The weights are drawn in float32 (so
loading them into a float32 module and converting it to float64 loses nothing).
"""
from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tfmcourse.embedding import RotaryEmbedding as RefRotaryEmbedding
from tfmcourse.grading.checks import assert_close, expect_tensor
from tfmcourse.grading.checks import assert_mixes_tokens as assert_mixes
from tfmcourse.grading.impl import Ref, attr, call, obj_spec
from tfmcourse.grading.wire import MissingName, StudentError
from tfmcourse.multihead import MultiHeadAttention as RefMultiHeadAttention

pytestmark = [pytest.mark.ch04]
HEAD, LOOP, MHA, CACHE = "AttentionHead", "MultiHeadAttentionLoop", "MultiHeadAttention", "KVCache"
D, H = 16, 4
HS = D // H
F64 = torch.float64

# (a requirement as the exercise states it, [the tests that exercise it])
REQUIREMENTS: list[tuple[str, list[str]]] = [
    ("AttentionHead(d_model, head_dim, *, bias=True) holds q, k, v = nn.Linear(d_model, head_dim, bias=bias)",
     ["test_attention_head_parameters"]),
    ("AttentionHead.forward: softmax(q(x) k(x)^T / sqrt(head_dim)) v(x), shape (B, T, head_dim)",
     ["test_attention_head_self_attention"]),
    (("AttentionHead: keys and values from context (cross-attention); a (B, 1, 1, S) mask and is_causal reach "
      "attention (a head axis of size one)"), ["test_attention_head_cross_attention_masks"]),
    (("MultiHeadAttentionLoop: n_heads separate AttentionHead(d_model, d_model // n_heads) in heads and proj = "
      "nn.Linear(d_model, d_model); bias reaches all of them"), ["test_loop_parameters"]),
    (("MultiHeadAttentionLoop.forward = proj(Concat(head_1, ..., head_h)), heads in order; equals "
      "nn.MultiheadAttention with the same weights"), ["test_loop_matches_torch"]),
    ("MultiHeadAttentionLoop passes context, mask and is_causal on to every head",
     ["test_loop_cross_attention_padding_and_causal"]),
    ("n_heads must be a positive divisor of d_model, else ValueError (both classes)", ["test_bad_head_count_raises"]),
    (("MultiHeadAttention: qkv = nn.Linear(d_model, 3 * d_model) holding [W_Q; W_K; W_V] by rows and proj = "
      "nn.Linear(d_model, d_model); bias=False drops every bias and needs none"),
     ["test_mha_parameters", "test_mha_without_bias"]),
    (("self-attention equals nn.MultiheadAttention with in_proj_weight = qkv.weight and out_proj = proj (scores "
      "scaled by 1/sqrt(head_dim))"), ["test_mha_self_attention_matches_torch"]),
    (("_split_heads: view(B, T, n_heads, head_dim).transpose(1, 2), and back with transpose(1, 2).reshape: heads stay"
      " apart"), ["test_mha_heads_are_independent"]),
    ("the loop and the batched module compute the same function once the per-head weights are stacked into qkv",
     ["test_loop_equals_batched_with_mapped_weights"]),
    ("is_causal=True: token t attends to tokens 0..t", ["test_mha_causal"]),
    ("mask, True = may attend: a (B, 1, 1, S) padding mask hides the padded keys", ["test_mha_key_padding"]),
    ("masks are laid out for (B, n_heads, T, S) scores: (T, S), (B, 1, T, S) and per-head masks broadcast",
     ["test_mha_mask_layouts"]),
    ("mask and is_causal apply together", ["test_mha_causal_with_padding"]),
    (("need_weights=True returns (output, weights) with every head's weights (B, n_heads, T, S), not their average; "
      "need_weights=False returns the output alone"), ["test_mha_returns_per_head_weights"]),
    ("keep_weights=True stores the last weights in last_weights", ["test_mha_keep_weights"]),
    (("cross-attention: W_Q on x, W_K and W_V on context; output (B, T, d_model), weights (B, n_heads, T, S), a "
      "padding mask on the context"), ["test_mha_cross_attention"]),
    (("fused=True (PyTorch's kernel through attention()) and fused=False (the written-out path) compute the same "
      "thing, masks and is_causal included"), ["test_mha_fused_and_manual_paths_agree"]),
    ("dropout = dropout on the attention weights in training mode only (eval: none; dropout=0.0: none)",
     ["test_mha_dropout_off_in_eval_and_at_zero"]),
    ("dropout drops attention weights (one draw per head, query and key), kept ones rescaled by 1/(1-p), on both paths",
     ["test_mha_dropout_on_attention_weights"]),
    ("gradients reach x and every parameter", ["test_mha_gradients"]),
    ("a float32 or bfloat16 module on inputs of that dtype returns that dtype", ["test_mha_dtypes"]),
    (("KVCache: k and v start as None, len() is 0; update(k, v) appends (B, nh, T, hs) on the time axis, stores and "
      "returns all keys and values; len() counts cached tokens"), ["test_kv_cache_update_appends_along_time"]),
    (("cache: k, v = cache.update(k, v) after the head split; new queries attend over every cached key (generation "
      "one token at a time equals recomputing)"), ["test_kv_cache_one_token_at_a_time"]),
    ("with is_causal and past tokens in the cache (S > T) the causal mask aligns bottom-right (a prompt, then chunks)",
     ["test_kv_cache_chunks_with_causal"]),
    ("rope: q, k = rope(q, k, offset=...) after the head split, positions 0..T-1 without a cache",
     ["test_rope_rotates_queries_and_keys"]),
    ("rope with a cache: offset=len(cache), before cache.update", ["test_kv_cache_with_rope"]),
]


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


def mha_state(seed: int) -> dict:
    """Random weights for a MultiHeadAttention(D, H) with biases (the state of :func:`torch_mha`)."""
    return torch_mha(seed=seed)[1]


def identity_proj(state: dict) -> dict:
    """``state`` with proj = identity (and no proj bias), so the output *is* the heads side by side."""
    return {**state, "proj.weight": torch.eye(D, dtype=F64), "proj.bias": torch.zeros(D, dtype=F64)}


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


def first_token_changed(x: torch.Tensor) -> torch.Tensor:
    """``x`` with a different first token (every other token unchanged)."""
    out = x.clone()
    out[:, 0] = rand(x.size(0), x.size(-1), seed=999)
    return out


def need_helper(impl, name: str, module: str) -> None:
    """Helper classes (not graded) that a scenario builds inside the implementation must be in its namespace:
    a notebook imports them (``from tfmcourse.embedding import RotaryEmbedding``). The in-process reference
    namespace holds only interface names, so the reference's class is added there (to the reference only: a
    notebook graded in-process must import it, as in the sandbox)."""
    ns = getattr(impl, "ns", None)
    if isinstance(ns, dict) and name not in ns and ns.get(MHA) is RefMultiHeadAttention:
        ns[name] = getattr(importlib.import_module(module), name)


def run(impl, name: str, init_args: tuple, state: dict | None, calls: list[dict], *, init_kwargs=None,
        dtype=F64, **kwargs) -> list:
    """Build ``name(*init_args, **init_kwargs)``, load ``state``, convert to ``dtype``, run ``calls``: outputs."""
    return impl.run_module(name, init_args, init_kwargs or {}, state, calls, dtype=dtype, **kwargs).outputs


def fwd(impl, name: str, init_args: tuple, state: dict, *args, dtype=F64, **kwargs):
    """Build ``name(*init_args)``, load ``state``, convert to ``dtype`` and run one forward call."""
    return run(impl, name, init_args, state, [call("forward", *args, **kwargs)], dtype=dtype)[0]


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
    outs = run(impl, HEAD, (D, HS), state, [call("forward", x, ctx, mask=as_padding(keep)),
                                            call("forward", ctx, is_causal=True)])
    assert_close(outs[0], head_expected(state, x, ctx, keep=keep),
                 "AttentionHead cross-attention with a (B, 1, 1, S) padding mask (give q, k, v a head axis of size "
                 "one so that the mask broadcasts)")
    assert_close(outs[1], head_expected(state, ctx, causal=True), "AttentionHead with is_causal=True")


# --- MultiHeadAttentionLoop ---------------------------------------------------------------------------------

@pytest.mark.points(1)
def test_loop_parameters(impl):
    """The loop holds n_heads separate AttentionHeads of width d_model/n_heads and a proj; bias=False reaches all."""
    want = {k: tuple(v.shape) for k, v in loop_state(mha_state(0)).items()}
    assert impl.param_shapes(LOOP, (D, H)) == want, \
        "MultiHeadAttentionLoop parameters: expected heads.{i}.q/k/v (head_dim x d_model) for i < n_heads, each " \
        "head its own module, and proj (d_model x d_model)"
    want_nb = {k: v for k, v in want.items() if k.endswith("weight")}
    assert impl.param_shapes(LOOP, (D, H), {"bias": False}) == want_nb, \
        "MultiHeadAttentionLoop(bias=False): no head's q, k, v and not proj may have a bias"


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
    outs = run(impl, LOOP, (D, H), loop_state(state), [call("forward", x, ctx, mask=as_padding(keep)),
                                                       call("forward", x, is_causal=True)])
    assert_close(outs[0], run_torch(ref, x, ctx, keep=keep), "MultiHeadAttentionLoop cross-attention with padding")
    assert_close(outs[1], run_torch(ref, x, causal=True), "MultiHeadAttentionLoop with is_causal=True")


@pytest.mark.points(1)
def test_loop_equals_batched_with_mapped_weights(impl):
    """The loop and the batched module compute the same thing once the per-head weights are stacked into qkv."""
    state = mha_state(50)
    x = rand(3, 5, D, seed=51)
    kw = {"mask": as_padding(lengths_mask([5, 4, 2], 5))}
    loop = fwd(impl, LOOP, (D, H), loop_state(state), x, **kw)
    fused = fwd(impl, MHA, (D, H), state, x, **kw)
    assert_close(fused, expect_tensor(loop, "MultiHeadAttentionLoop output", shape=(3, 5, D)),
                 "MultiHeadAttention output vs MultiHeadAttentionLoop output with the same weights (with padding)")


@pytest.mark.points(1)
def test_bad_head_count_raises(impl):
    """n_heads must be a positive divisor of d_model: ValueError otherwise, in both classes.

    (10, 3), (10, 4) and (16, 0) are rejected; (12, 3) is accepted."""
    for name in (MHA, LOOP):
        for bad in ((10, 3), (10, 4), (16, 0)):
            expect_error(impl, name, bad, f"{name}{bad}")
        assert impl.param_shapes(name, (12, 3))["proj.weight"] == (12, 12), f"{name}(12, 3) must be accepted"


# --- MultiHeadAttention: the core computation ---------------------------------------------------------------

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
                 "MultiHeadAttention self-attention output (queries are the first d_model rows of qkv, keys the "
                 "next, values the last; scores scaled by 1/sqrt(head_dim); proj applied)")


@pytest.mark.points(2)
def test_mha_heads_are_independent(impl):
    """Heads stay apart: head i's output columns depend only on head i's rows of W_Q, W_K, W_V.

    With proj = identity, changing the rows of heads 0, 2, 3 leaves head 1's columns i*hs:(i+1)*hs unchanged."""
    state = identity_proj(mha_state(120))
    rows = torch.ones(3 * D, dtype=torch.bool)
    for j in range(3):
        rows[j * D + HS:j * D + 2 * HS] = False  # head 1's rows stay, the other heads' rows change
    other = {**state, "qkv.weight": torch.where(rows[:, None], rand(3 * D, D, seed=121), state["qkv.weight"]),
             "qkv.bias": torch.where(rows, rand(3 * D, seed=122), state["qkv.bias"])}
    x = rand(2, 5, D, seed=123)
    a = expect_tensor(fwd(impl, MHA, (D, H), state, x), "output", shape=(2, 5, D))
    b = expect_tensor(fwd(impl, MHA, (D, H), other, x), "output", shape=(2, 5, D))
    assert_close(b[..., HS:2 * HS], a[..., HS:2 * HS],
                 "head 1's output columns after changing the weights of heads 0, 2, 3 only: heads must not mix; split "
                 "with view(B, T, nh, hs).transpose(1, 2) and merge with transpose(1, 2).reshape(B, T, C)")
    assert float((b - a).abs().max()) > 1e-3, "changing the weights of heads 0, 2, 3 changed nothing"


# --- MultiHeadAttention: masks, weights, paths, bias ----------------------------------------------------------

@pytest.mark.points(2)
def test_mha_causal(impl):
    """is_causal=True: the output at token t equals the output for the prefix x[:, :t+1] (no mask) at t."""
    state, x = mha_state(70), rand(2, 6, D, seed=71)
    outs = run(impl, MHA, (D, H), state, [call("forward", x, is_causal=True), call("forward", first_token_changed(x)),
                                          *[call("forward", x[:, :t + 1]) for t in range(6)]])
    got = expect_tensor(outs[0], "output with is_causal=True", shape=(2, 6, D))
    assert_mixes(outs[-1], outs[1], "output without a mask")
    want = torch.stack([expect_tensor(o, "output", shape=(2, t + 1, D))[:, t] for t, o in enumerate(outs[2:])], dim=1)
    assert_close(got, want, "output with is_causal=True (token t must see tokens 0..t only: the output for x[:, :t+1] "
                            "at t)")


@pytest.mark.points(2)
def test_mha_key_padding(impl):
    """A (B, 1, 1, S) padding mask (True = may attend) hides the padded keys.

    The real tokens of sequence b get the output of x[b, :length_b] without a mask."""
    state, x, lengths = mha_state(72), rand(3, 6, D, seed=73), [6, 4, 2]
    outs = run(impl, MHA, (D, H), state, [call("forward", x, mask=as_padding(lengths_mask(lengths, 6))),
                                          call("forward", x), call("forward", first_token_changed(x)),
                                          *[call("forward", x[b:b + 1, :n]) for b, n in enumerate(lengths)]])
    got = expect_tensor(outs[0], "output with a padding mask", shape=(3, 6, D))
    assert_mixes(outs[1], outs[2], "output without a mask")
    for b, n in enumerate(lengths):
        assert_close(got[b, :n], expect_tensor(outs[3 + b], "output", shape=(1, n, D))[0],
                     f"sequence {b} with {n} real tokens and the padding mask (True = may attend): must equal the "
                     f"output for its {n} real tokens alone")


@pytest.mark.points(1)
def test_mha_mask_layouts(impl):
    """Masks broadcast against (B, n_heads, T, S): (T, S), (B, 1, T, S) and per-head masks work.

    The same (T, S) mask in every layout gives the same output; a (1, n_heads, T, S) mask applies mask[:, i] to head i."""
    state, x = identity_proj(mha_state(74)), rand(2, 5, D, seed=75)
    g = torch.Generator().manual_seed(76)
    per_head = (torch.rand(1, H, 5, 5, generator=g) < 0.5) | torch.eye(5, dtype=torch.bool)
    m = per_head[0, 0]
    outs = run(impl, MHA, (D, H), state, [call("forward", x, mask=m), call("forward", x, mask=m.expand(2, 1, 5, 5)),
                                          call("forward", x, mask=m.expand(2, H, 5, 5)), call("forward", x),
                                          call("forward", x, mask=per_head),
                                          *[call("forward", x, mask=per_head[0, i]) for i in range(H)]])
    base = expect_tensor(outs[0], "output with a (T, S) mask", shape=(2, 5, D))
    assert float((base - expect_tensor(outs[3], "output", shape=(2, 5, D))).abs().max()) > 1e-6, \
        "a (T, S) mask that hides some keys changes nothing: is mask passed on to attention?"
    assert_close(outs[1], base, "output with the (T, S) mask given as (B, 1, T, S)")
    assert_close(outs[2], base, "output with the (T, S) mask given as (B, n_heads, T, S)")
    got = expect_tensor(outs[4], "output with a per-head mask", shape=(2, 5, D))
    for i in range(H):
        cols = slice(i * HS, (i + 1) * HS)
        assert_close(got[..., cols], expect_tensor(outs[5 + i], "output", shape=(2, 5, D))[..., cols],
                     f"head {i}'s columns with a per-head mask (1, n_heads, T, S): head {i} must use mask[:, {i}]")


@pytest.mark.points(1)
def test_mha_causal_with_padding(impl):
    """A padding mask and is_causal=True apply together.

    With left padding, real token t of sequence b gets the output of x[b, start_b:t+1] without a mask."""
    state, x, starts = mha_state(77), rand(2, 5, D, seed=78), [0, 2]
    keep = torch.arange(5)[None, :] >= torch.tensor(starts)[:, None]  # (B, S): the padding comes first
    spans = [(b, a, t) for b, a in enumerate(starts) for t in range(a, 5)]
    outs = run(impl, MHA, (D, H), state, [call("forward", x, mask=as_padding(keep), is_causal=True),
                                          call("forward", x), call("forward", first_token_changed(x)),
                                          *[call("forward", x[b:b + 1, a:t + 1]) for b, a, t in spans]])
    got = expect_tensor(outs[0], "output with a padding mask and is_causal=True", shape=(2, 5, D))
    assert_mixes(outs[1], outs[2], "output without a mask")
    want = torch.stack([expect_tensor(o, "output", shape=(1, t + 1 - a, D))[0, -1] for (b, a, t), o in zip(spans, outs[3:])])
    assert_close(torch.stack([got[b, t] for b, _, t in spans]), want,
                 "real tokens with a (left) padding mask and is_causal=True (both must apply)")


def check_weights(w, y, state: dict, x: torch.Tensor, keep: torch.Tensor, what: str) -> None:
    """``w`` must be every head's attention weights under the padding ``keep`` (B, S): 0 on masked keys, rows
    summing to 1, and, with proj = identity in ``state``, ``w @ values`` must give the output ``y``."""
    B, T, _ = x.shape
    w, y = expect_tensor(w, what, shape=(B, H, T, T)), expect_tensor(y, "output", shape=(B, T, D))
    allowed = as_padding(keep).expand(B, 1, T, T)
    assert_close(w.masked_fill(allowed, 0.0), torch.zeros(B, H, T, T, dtype=F64), f"{what} of masked keys (must be 0)")
    assert_close(w.sum(-1), torch.ones(B, H, T, dtype=F64), f"{what} summed over the keys (softmax rows sum to 1)")
    v = F.linear(x, state["qkv.weight"][2 * D:], state["qkv.bias"][2 * D:]).view(B, T, H, HS).transpose(1, 2)
    assert_close(y, (w @ v).transpose(1, 2).reshape(B, T, D),
                 f"output vs {what} @ values, heads side by side: they must be each head's own weights")


@pytest.mark.points(2)
def test_mha_returns_per_head_weights(impl):
    """need_weights=True returns (output, weights) with every head's weights, (B, n_heads, T, S).

    Rows sum to 1, masked keys get 0, and weights @ values gives the heads' outputs (proj = identity here);
    need_weights=False returns the output alone."""
    state, x, keep = identity_proj(mha_state(80)), rand(2, 5, D, seed=81), lengths_mask([5, 3], 5)
    kw = {"mask": as_padding(keep)}
    res, alone = run(impl, MHA, (D, H), state, [call("forward", x, need_weights=True, **kw),
                                                call("forward", x, need_weights=False, **kw)])
    expect_tensor(alone, "output with need_weights=False (the output alone)", shape=(2, 5, D))
    assert isinstance(res, (tuple, list)) and len(res) == 2, \
        f"need_weights=True must return (output, weights), got {type(res).__name__}"
    check_weights(res[1], res[0], state, x, keep, "attention weights (need_weights=True)")


@pytest.mark.points(1)
def test_mha_keep_weights(impl):
    """After keep_weights = True, forward stores the weights it used, (B, n_heads, T, S), in last_weights."""
    state, x, keep = identity_proj(mha_state(82)), rand(2, 5, D, seed=83), lengths_mask([5, 2], 5)
    outs = run(impl, MHA, (D, H), state, [call("__setattr__", "keep_weights", True),
                                          call("forward", x, mask=as_padding(keep)), attr("last_weights")])
    assert outs[2] is not None, "last_weights is still None after a forward call with keep_weights = True"
    check_weights(outs[2], outs[1], state, x, keep, "last_weights")


@pytest.mark.points(2)
def test_mha_cross_attention(impl):
    """Cross-attention: queries from x (B, T, d), keys and values from context (B, S, d), memory padding masked."""
    ref, state = torch_mha(seed=90)
    x, ctx = rand(2, 3, D, seed=91), rand(2, 7, D, seed=92)
    keep = lengths_mask([7, 4], 7)
    outs = run(impl, MHA, (D, H), state, [call("forward", x, ctx),
                                          call("forward", x, ctx, mask=as_padding(keep), need_weights=True)])
    out = expect_tensor(outs[0], "cross-attention output", shape=(2, 3, D))
    assert_close(out, run_torch(ref, x, ctx), "cross-attention output (W_Q on x, W_K and W_V on context)")
    want_y, want_w = run_torch(ref, x, ctx, keep=keep, weights=True)
    assert isinstance(outs[1], (tuple, list)) and len(outs[1]) == 2, "need_weights=True must return (output, weights)"
    assert_close(outs[1][1], want_w, "cross-attention weights with a padding mask (B, n_heads, T, S)")
    assert_close(outs[1][0], want_y, "cross-attention output with a padding mask")


@pytest.mark.points(1)
def test_mha_fused_and_manual_paths_agree(impl):
    """fused=True (PyTorch's kernel) and fused=False (the written-out path) give the same outputs.

    Without a mask, and causal with a padding mask."""
    state, x = mha_state(100), rand(2, 5, D, seed=101)
    calls = [call("forward", x), call("forward", x, mask=as_padding(lengths_mask([5, 3], 5)), is_causal=True),
             call("forward", first_token_changed(x))]
    fused = run(impl, MHA, (D, H), state, calls, init_kwargs={"fused": True})
    manual = run(impl, MHA, (D, H), state, calls, init_kwargs={"fused": False})
    assert_mixes(fused[0], fused[2], "fused=True output")
    for what, a, b in zip(("self-attention", "causal self-attention with padding"), fused, manual):
        assert_close(b, expect_tensor(a, f"fused=True {what} output"), f"fused=False vs fused=True: {what} output")


@pytest.mark.points(1)
def test_mha_without_bias(impl):
    """bias=False works like bias=True with zero biases, in self- and cross-attention (no bias used anywhere)."""
    state = {k: v for k, v in mha_state(110).items() if k.endswith("weight")}
    zeros = {"qkv.bias": torch.zeros(3 * D, dtype=F64), "proj.bias": torch.zeros(D, dtype=F64)}
    x, ctx = rand(2, 4, D, seed=111), rand(2, 5, D, seed=112)
    calls = [call("forward", x), call("forward", x, ctx), call("forward", first_token_changed(x))]
    nb = run(impl, MHA, (D, H), state, calls, init_kwargs={"bias": False})
    zb = run(impl, MHA, (D, H), {**state, **zeros}, calls)
    assert_mixes(nb[0], nb[2], "bias=False output")
    assert_close(nb[0], expect_tensor(zb[0], "output"), "bias=False self-attention vs bias=True with zero biases")
    assert_close(nb[1], expect_tensor(zb[1], "output"), "bias=False cross-attention vs bias=True with zero biases")


# --- MultiHeadAttention: dropout, gradients, dtypes ---------------------------------------------------------

@pytest.mark.points(1)
def test_mha_dropout_off_in_eval_and_at_zero(impl):
    """No dropout in eval mode (on both paths), nor with dropout=0.0 in training mode.

    dropout=0.5 in eval mode and dropout=0.0 in training mode both give the dropout=0.0 eval output."""
    state, x = mha_state(200), rand(2, 5, D, seed=201)
    kw = {"mask": as_padding(lengths_mask([5, 3], 5)), "is_causal": True}
    calls = [call("forward", x, **kw), call("forward", x, need_weights=True, **kw), call("forward", first_token_changed(x))]
    base = run(impl, MHA, (D, H), state, calls, init_kwargs={"dropout": 0.0})
    assert_mixes(base[0], base[2], "output")
    for p, train, what in ((0.5, False, "dropout=0.5 in eval mode"), (0.0, True, "dropout=0.0 in training mode")):
        outs = run(impl, MHA, (D, H), state, calls[:2], init_kwargs={"dropout": p}, train=train)
        assert_close(outs[0], base[0], f"{what}: output (no dropout may be applied)")
        for res in (outs[1], base[1]):
            assert isinstance(res, (tuple, list)) and len(res) == 2, "need_weights=True must return (output, weights)"
        assert_close(outs[1][0], base[1][0], f"{what}: output with need_weights=True (no dropout may be applied)")


def dropout_probe(seed: int) -> tuple[dict, torch.Tensor]:
    """Weights and input under which attention is uniform (W_Q = W_K = 0) and every value channel of token s is
    2^s (W_V reads channel 0 of x, which holds 2^s), with proj = identity: the output times S (1 - p) is then the
    sum of 2^s over the keys that dropout kept, the same in all channels of a head."""
    state = identity_proj(mha_state(seed))
    state["qkv.weight"], state["qkv.bias"] = torch.zeros(3 * D, D, dtype=F64), torch.zeros(3 * D, dtype=F64)
    state["qkv.weight"][2 * D:, 0] = 1.0
    x = rand(8, 8, D, seed=seed + 1)
    x[..., 0] = 2.0 ** torch.arange(8, dtype=F64)
    return state, x


def check_weight_dropout(y: torch.Tensor, p: float, what: str) -> None:
    """``y`` (B, S, D) from :func:`dropout_probe` in training mode: decode which keys each head kept."""
    B, S, _ = y.shape
    z = y.view(B, S, H, HS) * S * (1 - p)  # the sum of 2^s over kept keys, if kept weights are rescaled
    if torch.allclose(z, torch.full_like(z, (2 ** S - 1) * (1 - p))):
        raise AssertionError(f"{what}: no attention weight was dropped in training mode")
    if float((z - z[..., :1]).abs().max()) > 1e-6:
        raise AssertionError(f"{what}: the channels of one head were dropped separately; dropout acts on the "
                             f"attention weights (one draw per head, query and key), not on the output")
    r = z[..., 0].round()
    if float((z[..., 0] - r).abs().max()) > 1e-6 or r.min() < 0 or r.max() > 2 ** S - 1:
        raise AssertionError(f"{what}: the output is not a sum of kept weights rescaled by 1/(1-p) = {1 / (1 - p):g}")
    kept = float((((r.long()[..., None] >> torch.arange(S)) & 1).double()).mean())
    if abs(kept - (1 - p)) > 0.07:
        raise AssertionError(f"{what}: {kept:.0%} of the attention weights were kept, expected about {1 - p:.0%} "
                             f"(dropout={p})")


@pytest.mark.points(2)
def test_mha_dropout_on_attention_weights(impl):
    """dropout drops attention weights (not the output), rescales kept ones by 1/(1-p), on both paths.

    dropout=0.25 in training: one draw per head, query and key; about 75% kept."""
    state, x = dropout_probe(210)
    for fused in (True, False):
        y = run(impl, MHA, (D, H), state, [call("forward", x)], init_kwargs={"dropout": 0.25, "fused": fused},
                train=True)[0]
        check_weight_dropout(expect_tensor(y, "output in training mode", shape=(8, 8, D)), 0.25,
                             f"MultiHeadAttention(dropout=0.25, fused={fused}) in training mode")


@pytest.mark.points(2)
def test_mha_gradients(impl):
    """Gradients reach x and every parameter and match finite differences of the module's own output.

    Causal with padding; a parameter the output does not use may have no gradient."""
    state, x, g = mha_state(130), rand(2, 5, D, seed=131), rand(2, 5, D, seed=132)
    kw = {"mask": as_padding(lengths_mask([5, 3], 5)), "is_causal": True}
    res = impl.run_module(MHA, (D, H), {}, state, [call("forward", x, **kw)], backward=g, dtype=F64)
    grads = {"x": res.input_grads[0] if res.input_grads else None, **res.param_grads}
    eps, dirs = 1e-6, {k: rand(*v.shape, seed=133 + i) for i, (k, v) in enumerate({"x": x, **state}.items())}
    calls = [call("forward", x + eps * dirs["x"], **kw), call("forward", x - eps * dirs["x"], **kw),
             call("forward", first_token_changed(x), **kw), call("forward", x, **kw)]
    for key in state:
        for sign in (1, -1):
            calls += [call("load_state_dict", {**state, key: state[key] + sign * eps * dirs[key]}), call("forward", x, **kw)]
    outs = run(impl, MHA, (D, H), state, calls)
    assert_mixes(outs[3], outs[2], "output")
    shifted = {"x": outs[:2], **{key: outs[5 + 4 * i:8 + 4 * i:2] for i, key in enumerate(state)}}
    for key, d in dirs.items():
        plus, minus = (expect_tensor(o, "output", shape=tuple(x.shape)) for o in shifted[key])
        fd = float(((plus - minus) * g).sum()) / (2 * eps)
        got = grads.get(key)
        if got is None:  # fine for a parameter the output does not use
            assert abs(fd) < 1e-6, f"no gradient reached {key}: is something detached or computed under no_grad?"
            continue
        an = float((expect_tensor(got, f"gradient w.r.t. {key}", shape=tuple(d.shape)) * d).sum())
        assert abs(fd - an) <= 1e-5 * max(1.0, abs(fd)), \
            f"gradient w.r.t. {key} does not match how the output changes with {key} ({an:.6g} vs {fd:.6g} along a " \
            f"random direction)"


@pytest.mark.points(1)
def test_mha_dtypes(impl):
    """float32 and bfloat16 modules on inputs of that dtype return that dtype, close to the float64 result.

    Compared with the float64 output on the same (rounded) weights and inputs, within that dtype's precision."""
    state, x = mha_state(140), rand(2, 5, D, seed=141)
    for dtype, (rtol, atol) in ((torch.float32, (1e-4, 1e-5)), (torch.bfloat16, (5e-2, 5e-2))):
        s, xd = {k: v.to(dtype) for k, v in state.items()}, x.to(dtype)
        want = run(impl, MHA, (D, H), {k: v.double() for k, v in s.items()},
                   [call("forward", xd.double(), is_causal=True), call("forward", first_token_changed(xd.double()),
                                                                       is_causal=True)])
        assert_mixes(want[0], want[1], "float64 output")
        out = run(impl, MHA, (D, H), s, [call("forward", xd, is_causal=True)], dtype=dtype)[0]
        out = expect_tensor(out, f"{dtype} output", shape=(2, 5, D), dtype=dtype)
        assert_close(out, want[0].to(dtype), f"{dtype} output vs the float64 output", rtol=rtol, atol=atol)


# --- KV cache -----------------------------------------------------------------------------------------------

@pytest.mark.points(2)
def test_kv_cache_update_appends_along_time(impl):
    """KVCache.update appends keys/values on the time axis and returns them all; len() counts tokens.

    An empty cache has k = v = None and length 0; (B, nh, T, hs) tensors are appended on dim 2."""
    k1, v1 = rand(2, H, 3, HS, seed=150), rand(2, H, 3, HS, seed=151)
    k2, v2 = rand(2, H, 1, HS, seed=152), rand(2, H, 1, HS, seed=153)
    outs = run(impl, CACHE, (), None, [call("__len__"), attr("k"), attr("v"), call("update", k1, v1),
                                       call("update", k2, v2), call("__len__"), attr("k"), attr("v")], dtype=None)
    n0, k0, v0, first, second, n, k, v = outs
    assert n0 == 0, f"len() of an empty cache must be 0, got {n0}"
    assert k0 is None and v0 is None, "an empty cache holds k = v = None"
    assert isinstance(second, (tuple, list)) and len(second) == 2, "update(k, v) must return (k_all, v_all)"
    assert_close(first[0], k1, "keys returned by the first update")
    assert_close(second[0], torch.cat([k1, k2], dim=2),
                 "keys returned by the second update (appended on the time axis)")
    assert_close(second[1], torch.cat([v1, v2], dim=2), "values returned by the second update")
    assert n == 4, f"len() after caching 3 + 1 tokens must be 4, got {n}"
    assert_close(k, torch.cat([k1, k2], dim=2), "cache.k after two updates")
    assert_close(v, torch.cat([v1, v2], dim=2), "cache.v after two updates")


@pytest.mark.points(2)
def test_kv_cache_one_token_at_a_time(impl):
    """Tokens fed one at a time through a KVCache get the module's output for their prefix.

    Token t's output equals the output for x[:, :t+1] at t; the cache then holds (B, n_heads, T, head_dim)."""
    state, x = mha_state(160), rand(2, 6, D, seed=161)
    steps = [call("forward", x[:, t:t + 1], is_causal=True, cache=Ref("cache")) for t in range(6)]
    outs = run(impl, MHA, (D, H), state, [*steps, call("__len__", target="cache"), attr("k", target="cache"),
                                          attr("v", target="cache"), call("forward", first_token_changed(x)),
                                          *[call("forward", x[:, :t + 1]) for t in range(6)]],
               objects={"cache": obj_spec(CACHE)})
    n, k, v = outs[6:9]
    assert_mixes(outs[-1], outs[9], "output without a cache")
    for t in range(6):
        got = expect_tensor(outs[t], f"output for token {t}", shape=(2, 1, D))
        assert_close(got[:, 0], expect_tensor(outs[10 + t], "output", shape=(2, t + 1, D))[:, t],
                     f"output for token {t} with the cache (must attend over the cached tokens 0..{t}, as the module "
                     f"does on x[:, :{t + 1}])")
    assert n == 6, f"len(cache) after 6 tokens must be 6, got {n}"
    expect_tensor(k, "cache.k", shape=(2, H, 6, HS))
    expect_tensor(v, "cache.v", shape=(2, H, 6, HS))


@pytest.mark.points(1)
def test_kv_cache_chunks_with_causal(impl):
    """A prompt, one token and a chunk through a KVCache with is_causal equal the causal output at once.

    Prompt of 4, then 1, then 2 tokens: with past tokens cached the causal mask is aligned bottom-right."""
    state, x = mha_state(162), rand(2, 7, D, seed=163)
    spans = [(0, 4), (4, 5), (5, 7)]
    outs = run(impl, MHA, (D, H), state, [*[call("forward", x[:, a:b], is_causal=True, cache=Ref("cache"))
                                            for a, b in spans], call("forward", x, is_causal=True),
                                          call("forward", first_token_changed(x), is_causal=True)],
               objects={"cache": obj_spec(CACHE)})
    full = expect_tensor(outs[3], "causal output", shape=(2, 7, D))
    assert_mixes(full, outs[4], "causal output")
    for (a, b), got in zip(spans, outs[:3]):
        got = expect_tensor(got, f"output for tokens {a}..{b - 1}", shape=(2, b - a, D))
        assert_close(got, full[:, a:b], f"output for tokens {a}..{b - 1} with the cache and is_causal=True (vs the "
                                        f"causal output over all tokens)")


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
    state = mha_state(170)
    x = rand(2, 6, D, seed=171)
    res = _run_rope(impl, MHA, (D, H), {}, state, [call("double", target="rope"),
                                                   call("forward", x, is_causal=True, rope=Ref("rope"))],
                    dtype=F64, objects=_rope_objects(impl))
    assert_close(res.outputs[1], rope_expected(state, x, ref_rope), "causal output with RoPE")


@pytest.mark.points(2)
def test_kv_cache_with_rope(impl):
    """With RoPE and a KVCache each new token is rotated at its true position (offset = len(cache)).

    Token t fed through the cache gets the output of the module with RoPE on x[:, :t+1] at t."""
    state, x = mha_state(180), rand(2, 6, D, seed=181)
    steps = [call("forward", x[:, t:t + 1], is_causal=True, cache=Ref("cache"), rope=Ref("rope")) for t in range(6)]
    res = _run_rope(impl, MHA, (D, H), {}, state,
                    [call("double", target="rope"), *steps, call("forward", x),
                     *[call("forward", x[:, :t + 1], rope=Ref("rope")) for t in range(6)]],
                    dtype=F64, objects=_rope_objects(impl))
    outs = res.outputs[1:]
    with_rope = expect_tensor(outs[-1], "output with RoPE", shape=(2, 6, D))
    assert float((with_rope - expect_tensor(outs[6], "output", shape=(2, 6, D))).abs().max()) > 1e-6, \
        "rope changes nothing: rotate q and k with q, k = rope(q, k, offset=...)"
    for t in range(6):
        got = expect_tensor(outs[t], f"output for token {t} with cache and RoPE", shape=(2, 1, D))
        assert_close(got[:, 0], expect_tensor(outs[7 + t], "output", shape=(2, t + 1, D))[:, t],
                     f"output for token {t} with the cache and RoPE (token {t} must be rotated at position {t}: "
                     f"offset=len(cache))")
