"""Hidden suite, chapter 5: the position-wise FFN, SwiGLU and the encoder block that combines them.

Interface: ``FeedForward(d_model, d_ff, *, activation="relu", dropout=0.0, bias=True)`` (``fc1``, ``fc2``),
``SwiGLU(d_model, d_ff, *, dropout=0.0, bias=False)`` (``fc1`` holds [W_gate; W_up] stacked, ``fc2``) and
``EncoderBlock(d_model, n_heads, d_ff, *, dropout=0.0, ffn="relu", norm="layernorm", norm_first=True,
bias=True, eps=1e-5)`` with sub-modules ``norm1``, ``attn`` (the chapter 4 ``MultiHeadAttention``), ``norm2``,
``ffn``; ``forward(x, mask=None, *, is_causal=False)`` with masks True = may attend.

Every expected value is computed here, in the grader: the FFNs from their formulas with ``torch.nn.functional``
in float64, the block with ``nn.TransformerEncoderLayer`` (whose weights are loaded into the implementation;
its masks mean True = *masked*, hence the ``~``) or, for options PyTorch's layer lacks, the reference
``tfmcourse.blocks.EncoderBlock``.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tfmcourse.blocks import EncoderBlock as RefEncoderBlock
from tfmcourse.grading.checks import assert_close, expect_tensor
from tfmcourse.grading.impl import ModuleResult, call

pytestmark = [pytest.mark.ch05]
FFN, SWIGLU, BLOCK = "FeedForward", "SwiGLU", "EncoderBlock"
D, H, DFF, T = 16, 4, 32, 6  # block sizes: width, heads, FFN width, tokens


def close(actual, expected: torch.Tensor, what: str, **kw) -> None:
    """``assert_close`` with float64 expectations compared at rtol=1e-5, atol=1e-6: tight enough for any
    formula mistake, loose enough for an implementation that computes a float64 input in float32."""
    if expected.dtype == torch.float64:
        kw = {"rtol": 1e-5, "atol": 1e-6, **kw}
    assert_close(actual, expected, what, **kw)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape, generator=gen(seed), dtype=torch.float64) * scale


def weights(*shape: int, seed: int = 0, scale: float = 0.3, shift: float = 0.0) -> torch.Tensor:
    """float64 values that float32 represents exactly: ``run_module`` loads them into the module's float32
    parameters before casting the module to float64, so nothing is rounded on the way."""
    return (randn(*shape, seed=seed) * scale + shift).float().double()


def run(impl, name: str, init_args: tuple, init_kwargs: dict, state: dict | None, *args,
        dtype: torch.dtype = torch.float64, backward=None, train: bool = False, **kwargs) -> ModuleResult:
    """Build, load ``state``, cast to ``dtype``, one ``forward(*args, **kwargs)`` (eval mode unless ``train``)."""
    return impl.run_module(name, init_args, init_kwargs, state, [call("forward", *args, **kwargs)], dtype=dtype,
                           backward=backward, train=train)


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


def expected_of(name: str, x: torch.Tensor, s: dict) -> torch.Tensor:
    return ffn_expected(x, s, "gelu") if name == FFN else swiglu_expected(x, s)


def state_of(name: str, d: int, d_ff: int, seed: int) -> tuple[dict, dict]:
    """(init kwargs, state) with biases for either FFN."""
    if name == FFN:
        return {"activation": "gelu"}, ffn_state(d, d_ff, seed)
    return {"bias": True}, swiglu_state(d, d_ff, seed, bias=True)


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


@pytest.mark.points(2)
def test_ffn_gradients(impl):
    """Gradients w.r.t. the input and all four parameters equal PyTorch's (float64, GELU)."""
    s, x, g = ffn_state(8, 16, seed=7), randn(2, 3, 8, seed=8), randn(2, 3, 8, seed=9)
    res = run(impl, FFN, (8, 16), {"activation": "gelu"}, s, x, backward=g)
    leaves = {k: v.clone().requires_grad_() for k, v in {"x": x, **s}.items()}
    ffn_expected(leaves["x"], leaves, "gelu").backward(g)
    got = {"x": res.input_grads[0] if res.input_grads else None, **res.param_grads}
    for name, leaf in leaves.items():
        assert got.get(name) is not None, f"no gradient reached {name}: is it detached or unused?"
        close(got[name], leaf.grad, f"gradient w.r.t. {name}")


@pytest.mark.points(1)
def test_ffn_leading_dims_and_float32(impl):
    """Inputs (d,), (T, d) and (A, B, T, d) work; a float32 FFN maps float32 to float32."""
    s = ffn_state(8, 16, seed=10)
    for shape in ((8,), (4, 8), (2, 3, 4, 8)):
        x = randn(*shape, seed=11)
        out = expect_tensor(run(impl, FFN, (8, 16), {}, s, x).output, f"FeedForward output for input {shape}", shape=shape)
        close(out, ffn_expected(x, s), f"FeedForward output for input {shape}")
    x = randn(2, 4, 8, seed=12).float()
    out = run(impl, FFN, (8, 16), {}, s, x, dtype=torch.float32).output
    out = expect_tensor(out, "float32 FeedForward output", shape=(2, 4, 8), dtype=torch.float32)
    close(out, ffn_expected(x.double(), s).float(), "float32 FeedForward output")


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
    """A gate half of fc1 stuck at -30 closes the gate (silu(-30) ~ 0): the output is fc2's bias alone."""
    s = swiglu_state(8, 12, seed=22, bias=True)
    s["fc1.weight"][:12] = 0.0
    s["fc1.bias"][:12] = -30.0
    x = randn(3, 8, seed=23)
    out = run(impl, SWIGLU, (8, 12), {"bias": True}, s, x).output
    close(out, swiglu_expected(x, s), "SwiGLU output with the gate closed (silu must act on the first "
          "half of fc1's output, the gate, which multiplies the second half, up)")


@pytest.mark.points(1)
def test_swiglu_with_bias(impl):
    """``bias=True`` adds biases to fc1 (both halves) and fc2."""
    s, x = swiglu_state(8, 12, seed=24, bias=True), randn(2, 3, 8, seed=25)
    close(run(impl, SWIGLU, (8, 12), {"bias": True}, s, x).output, swiglu_expected(x, s),
          "SwiGLU(bias=True) output")


@pytest.mark.points(2)
def test_swiglu_gradients(impl):
    """Gradients w.r.t. the input, fc1.weight and fc2.weight equal PyTorch's (float64)."""
    s, x, g = swiglu_state(8, 12, seed=26), randn(2, 3, 8, seed=27), randn(2, 3, 8, seed=28)
    res = run(impl, SWIGLU, (8, 12), {}, s, x, backward=g)
    leaves = {k: v.clone().requires_grad_() for k, v in {"x": x, **s}.items()}
    swiglu_expected(leaves["x"], leaves).backward(g)
    got = {"x": res.input_grads[0] if res.input_grads else None, **res.param_grads}
    for name, leaf in leaves.items():
        assert got.get(name) is not None, f"no gradient reached {name}: is it detached or unused?"
        close(got[name], leaf.grad, f"gradient w.r.t. {name}")


# --- both FFNs -----------------------------------------------------------------------------------------------

@pytest.mark.points(1)
@pytest.mark.parametrize("name", [FFN, SWIGLU])
def test_position_wise(impl, name):
    """Each token is transformed on its own: permuting the positions permutes the outputs the same way."""
    kw, s = state_of(name, 8, 16, seed=30)
    x = randn(2, 7, 8, seed=31)
    perm = torch.randperm(7, generator=gen(32))
    out = expect_tensor(run(impl, name, (8, 16), kw, s, x).output, f"{name} output", shape=(2, 7, 8))
    out_p = expect_tensor(run(impl, name, (8, 16), kw, s, x[:, perm]).output, f"{name} output", shape=(2, 7, 8))
    close(out_p, out[:, perm], f"{name} output for permuted positions (must be the permuted output)")
    close(out, expected_of(name, x, s), f"{name} output")


@pytest.mark.points(1)
@pytest.mark.parametrize("name", [FFN, SWIGLU])
def test_dropout_only_in_training(impl, name):
    """Dropout sits on the hidden activations: off in eval mode; in training with p=1 every hidden unit is
    dropped, so the output is fc2's bias."""
    kw, s = state_of(name, 8, 16, seed=33)
    x = randn(2, 4, 8, seed=34)
    out = run(impl, name, (8, 16), kw | {"dropout": 0.5}, s, x).output
    close(out, expected_of(name, x, s), f"{name}(dropout=0.5) output in eval mode (dropout must be off)")
    out = run(impl, name, (8, 16), kw | {"dropout": 1.0}, s, x, train=True).output
    close(out, s["fc2.bias"].expand(2, 4, 8).clone(),
          f"{name}(dropout=1.0) output in training mode (every hidden unit dropped, only fc2's bias is left)")


# --- EncoderBlock --------------------------------------------------------------------------------------------

_TORCH_NAMES = {"self_attn.in_proj_weight": "attn.qkv.weight", "self_attn.in_proj_bias": "attn.qkv.bias",
                "self_attn.out_proj.weight": "attn.proj.weight", "self_attn.out_proj.bias": "attn.proj.bias",
                "linear1.weight": "ffn.fc1.weight", "linear1.bias": "ffn.fc1.bias",
                "linear2.weight": "ffn.fc2.weight", "linear2.bias": "ffn.fc2.bias",
                "norm1.weight": "norm1.weight", "norm1.bias": "norm1.bias",
                "norm2.weight": "norm2.weight", "norm2.bias": "norm2.bias"}


def torch_layer(norm_first: bool, activation: str = "relu", seed: int = 0) -> tuple[nn.Module, dict]:
    """A float64 nn.TransformerEncoderLayer with random float32-exact weights, and its state in our names."""
    torch.manual_seed(seed)
    layer = nn.TransformerEncoderLayer(D, H, DFF, dropout=0.0, activation=activation, batch_first=True,
                                       norm_first=norm_first).double().eval()
    with torch.no_grad():
        for i, (name, p) in enumerate(layer.named_parameters()):
            shift = 1.0 if name.startswith("norm") and name.endswith("weight") else 0.0
            p.copy_(weights(*p.shape, seed=seed * 100 + i, shift=shift))
    return layer, {_TORCH_NAMES[k]: v.detach().clone() for k, v in layer.state_dict().items()}


def torch_out(layer: nn.Module, x: torch.Tensor, **kwargs) -> torch.Tensor:
    """The PyTorch layer's output (computed with autograd on, so PyTorch takes its plain, not its fast, path)."""
    with torch.enable_grad():
        return layer(x, **kwargs).detach()


def block_input(B: int = 3, seed: int = 50) -> torch.Tensor:
    return randn(B, T, D, seed=seed)


def block_kwargs(norm_first: bool, activation: str = "relu", **extra) -> dict:
    return {"ffn": activation, "norm_first": norm_first, **extra}


@pytest.mark.points(1)
def test_block_submodule_names(impl):
    """EncoderBlock's parameters are named as in the reference: norm1, attn.qkv, attn.proj, norm2, ffn.fc1, ffn.fc2."""
    for kw in ({}, {"norm": "rmsnorm", "ffn": "swiglu", "bias": False}):
        want = sorted(RefEncoderBlock(D, H, DFF, **kw).state_dict())
        got = impl.state_dict_keys(BLOCK, (D, H, DFF), kw)
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        assert not missing and not extra, \
            f"EncoderBlock({D}, {H}, {DFF}, **{kw}) state dict: missing {missing}, unexpected {extra}"


@pytest.mark.points(1)
@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_block_equals_torch_with_padding(impl, norm_first, activation):
    """With the same weights the block equals nn.TransformerEncoderLayer (post-LN: norm after each residual
    add; pre-LN: norm before each sub-layer), here with a key padding mask of shape (B, 1, 1, S)."""
    layer, state = torch_layer(norm_first, activation, seed=1 + 2 * norm_first + (activation == "gelu"))
    x = block_input()
    keep = torch.arange(T)[None, :] < torch.tensor([T, 4, 2])[:, None]  # (B, S) True = real token
    out = run(impl, BLOCK, (D, H, DFF), block_kwargs(norm_first, activation), state, x, keep[:, None, None, :]).output
    out = expect_tensor(out, "EncoderBlock output", shape=(3, T, D), dtype=torch.float64)
    want = torch_out(layer, x, src_key_padding_mask=~keep)
    close(out[keep], want[keep], f"EncoderBlock(norm_first={norm_first}, ffn='{activation}') output at the "
          f"real tokens, with a padding mask (True = may attend)")


@pytest.mark.points(1)
@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
def test_block_equals_torch_causal(impl, norm_first):
    """``is_causal=True`` equals nn.TransformerEncoderLayer with a causal src_mask (token t sees tokens <= t)."""
    layer, state = torch_layer(norm_first, seed=10 + norm_first)
    x = block_input(2, seed=51)
    out = run(impl, BLOCK, (D, H, DFF), block_kwargs(norm_first), state, x, is_causal=True).output
    hide_future = torch.ones(T, T, dtype=torch.bool).triu(1)  # PyTorch: True = masked
    close(out, torch_out(layer, x, src_mask=hide_future), f"EncoderBlock(norm_first={norm_first}) output with is_causal=True")


@pytest.mark.points(1)
def test_block_mask_means_may_attend(impl):
    """An explicit (T, T) boolean mask, True = may attend, equals PyTorch's src_mask = ~mask."""
    layer, state = torch_layer(True, seed=12)
    x = block_input(2, seed=52)
    mask = torch.rand(T, T, generator=gen(53)) < 0.5
    mask.fill_diagonal_(True)
    out = run(impl, BLOCK, (D, H, DFF), block_kwargs(True), state, x, mask).output
    close(out, torch_out(layer, x, src_mask=~mask), "EncoderBlock output with a (T, T) mask (True = may attend)")


def zero_sublayer_outputs(state: dict) -> dict:
    state = {k: v.clone() for k, v in state.items()}
    for k in ("attn.proj.weight", "attn.proj.bias", "ffn.fc2.weight", "ffn.fc2.bias"):
        state[k].zero_()
    return state


@pytest.mark.points(1)
def test_block_pre_ln_residual_is_identity(impl):
    """Pre-LN, x + Sublayer(LN(x)): with the attention and FFN output projections zeroed the block is the identity."""
    _, state = torch_layer(True, seed=13)
    x = block_input(2, seed=54) * 5.0
    out = run(impl, BLOCK, (D, H, DFF), block_kwargs(True), zero_sublayer_outputs(state), x).output
    close(out, x, "pre-LN EncoderBlock output with zeroed sub-layer outputs (the residual stream x itself)")


@pytest.mark.points(1)
def test_block_post_ln_residual_is_layernorm(impl):
    """Post-LN, LN(x + Sublayer(x)): with the output projections zeroed the block gives norm2(norm1(x))."""
    _, state = torch_layer(False, seed=14)
    state = zero_sublayer_outputs(state)
    x = block_input(2, seed=55) * 5.0 + 2.0
    out = run(impl, BLOCK, (D, H, DFF), block_kwargs(False), state, x).output
    h = F.layer_norm(x, (D,), state["norm1.weight"], state["norm1.bias"], 1e-5)
    want = F.layer_norm(h, (D,), state["norm2.weight"], state["norm2.bias"], 1e-5)
    close(out, want, "post-LN EncoderBlock output with zeroed sub-layer outputs (norm2(norm1(x)))")


@pytest.mark.points(2)
@pytest.mark.parametrize("norm_first", [False, True], ids=["post_ln", "pre_ln"])
def test_block_gradients(impl, norm_first):
    """Gradients reach the input and every parameter and equal the reference block's (float64, causal)."""
    _, state = torch_layer(norm_first, "gelu", seed=15 + norm_first)
    x, g = block_input(2, seed=56), randn(2, T, D, seed=57)
    kw = block_kwargs(norm_first, "gelu")
    res = run(impl, BLOCK, (D, H, DFF), kw, state, x, is_causal=True, backward=g)
    ref = RefEncoderBlock(D, H, DFF, **kw).double()
    ref.load_state_dict(state)
    xl = x.clone().requires_grad_()
    ref(xl, is_causal=True).backward(g)
    got_x = res.input_grads[0] if res.input_grads else None
    assert got_x is not None, "no gradient reached the input x"
    close(got_x, xl.grad, "gradient w.r.t. the block input x")
    for name, p in ref.named_parameters():
        got = res.param_grads.get(name)
        assert got is not None, f"no gradient reached {name}: is that sub-layer used in forward?"
        close(got, p.grad, f"gradient w.r.t. {name}")


@pytest.mark.points(1)
def test_block_dropout_off_in_eval(impl):
    """EncoderBlock(dropout=0.5) in eval mode applies no dropout: it equals the layer without dropout."""
    layer, state = torch_layer(True, seed=17)
    x = block_input(2, seed=58)
    out = run(impl, BLOCK, (D, H, DFF), block_kwargs(True, dropout=0.5), state, x).output
    close(out, torch_out(layer, x), "EncoderBlock(dropout=0.5) output in eval mode")


@pytest.mark.points(1)
def test_block_dropout_on_in_training(impl):
    """In training mode EncoderBlock(dropout=0.5) does drop: its output differs from the eval-mode output."""
    layer, state = torch_layer(True, seed=18)
    x = block_input(2, seed=59)
    out = run(impl, BLOCK, (D, H, DFF), block_kwargs(True, dropout=0.5), state, x, train=True).output
    out = expect_tensor(out, "EncoderBlock output in training mode", shape=(2, T, D))
    diff = float((out - torch_out(layer, x)).abs().max())
    assert diff > 1e-3, "EncoderBlock(dropout=0.5) gives the eval-mode output in training mode: is dropout applied?"


@pytest.mark.points(1)
def test_block_float32(impl):
    """A float32 block maps (B, T, d_model) float32 to (B, T, d_model) float32."""
    layer, state = torch_layer(True, seed=19)
    x = block_input(2, seed=60).float()
    out = run(impl, BLOCK, (D, H, DFF), block_kwargs(True), state, x, dtype=torch.float32).output
    out = expect_tensor(out, "float32 EncoderBlock output", shape=(2, T, D), dtype=torch.float32)
    close(out, torch_out(layer, x.double()).float(), "float32 EncoderBlock output")


@pytest.mark.points(1)
def test_block_rmsnorm_swiglu(impl):
    """``norm="rmsnorm"``, ``ffn="swiglu"`` build those sub-layers (eps passed on) and equal the reference block."""
    kw = {"norm": "rmsnorm", "ffn": "swiglu", "eps": 1e-3}
    ref = RefEncoderBlock(D, H, DFF, **kw).double()
    state = {k: weights(*v.shape, seed=70 + i, shift=1.0 if k.startswith("norm") else 0.0)
             for i, (k, v) in enumerate(ref.state_dict().items())}
    ref.load_state_dict(state)
    x = block_input(2, seed=61) * 0.05  # small inputs, so that eps matters
    out = run(impl, BLOCK, (D, H, DFF), kw, state, x, is_causal=True).output
    with torch.no_grad():
        close(out, ref(x, is_causal=True), "EncoderBlock(norm='rmsnorm', ffn='swiglu', eps=1e-3) output")
