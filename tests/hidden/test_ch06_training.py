"""Hidden suite, chapter 6: the decoder block, AdamW parameter groups, the learning-rate schedule, the training
step and the evaluation loop.

Interface: ``DecoderBlock(d_model, n_heads, d_ff, *, dropout=0.0, ffn="relu", norm="layernorm", norm_first=True,
bias=True, eps=1e-5)`` (sub-modules ``norm1``, ``self_attn``, ``norm2``, ``cross_attn``, ``norm3``, ``ffn``) with
``forward(x, memory, *, tgt_mask=None, memory_mask=None, is_causal=True)``; ``param_groups(model, weight_decay)``;
``warmup_cosine_lr(step, *, max_lr, min_lr, warmup_steps, total_steps)``; ``train_step(model, optimizer,
micro_batches, *, step, lr_schedule, grad_clip=None, scaler=None, amp_dtype=None) -> {"loss", "n_targets",
"grad_norm", "lr"}``; ``evaluate(model, batches, *, amp_dtype=None) -> {"loss", "n_targets"}``. Masks are boolean,
True = may attend; targets equal to -100 count nowhere.

Every expected value is computed here, in the grader: with ``nn.TransformerDecoderLayer`` holding the same
weights, the reference ``DecoderBlock`` (for options PyTorch's layer lacks), the schedule's formula written out
below, and for ``param_groups`` the reference ``EncoderBlock`` (a model from an earlier chapter) and grader-defined
models (``tfmcourse.grading.fixtures``: a tied matrix, a zoo of parameter kinds), built on both sides from the same
seed. ``train_step`` and ``evaluate`` run on fixture models, optimizers, scalers and schedules built in the
implementation's process; the grader repeats each run from its definition (the sum of every counted target's
cross-entropy divided by their number, clipping, the step's learning rate, the update) and compares the weights.
Dropout is checked by structure and statistics, never by random streams.
"""
from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tfmcourse.blocks import DecoderBlock as RefDecoderBlock
from tfmcourse.blocks import EncoderBlock as RefEncoderBlock
from tfmcourse.grading.checks import assert_close, assert_finite, expect_tensor
from tfmcourse.grading.fixtures import FIXTURES, GroupsZoo, ProbeClassifier, ProbeLM, ProbeSeq2Seq, TiedLM
from tfmcourse.grading.impl import Ref, attr, call, fcall, get, obj_spec
from tfmcourse.grading.wire import StudentError

pytestmark = [pytest.mark.ch06]
BLOCK, GROUPS, LR, STEP, EVAL = "DecoderBlock", "param_groups", "warmup_cosine_lr", "train_step", "evaluate"

REQUIREMENTS: list[tuple[str, list[str]]] = [
    ("DecoderBlock's sub-modules are named norm1, self_attn, norm2, cross_attn, norm3, ffn (as the reference), for "
     "every norm/ffn/bias option", ["test_decoder_block_parameter_names"]),
    ("pre-LN (norm_first=True): x + Dropout(SubLayer(LN_i(x))) for self-attention, cross-attention, FFN; post-LN "
     "(norm_first=False): LN_i(x + Dropout(SubLayer(x))); equals nn.TransformerDecoderLayer",
     ["test_decoder_block_matches_torch", "test_decoder_block_gradients"]),
    ("self-attention is causal by default; is_causal=False lets every target token see every other",
     ["test_decoder_block_is_causal"]),
    ("tgt_mask (B, 1, 1, T) masks self-attention together with the causal mask",
     ["test_decoder_block_target_padding_mask"]),
    ("cross-attention: queries from the target, keys and values from memory; memory_mask (B, 1, 1, S) hides padded "
     "memory; the memory is not normalised by the block", ["test_decoder_block_memory_mask_hides_padding",
                                                           "test_decoder_block_matches_torch"]),
    ("ffn='gelu' / 'swiglu', norm='rmsnorm', bias=False reach every sub-module", ["test_decoder_block_gelu_without_bias",
                                                                                "test_decoder_block_rmsnorm_swiglu"]),
    ("eps reaches all three norms", ["test_decoder_block_eps_reaches_every_norm"]),
    ("gradients flow to x, memory and every parameter", ["test_decoder_block_gradients"]),
    ("dropout1/2/3 on each sub-layer's output before the residual addition, rescaled by 1/(1-p); off in eval mode",
     ["test_decoder_block_sublayer_dropout", "test_decoder_block_dropout_only_in_training"]),
    ("dropout is passed to MultiHeadAttention (attention weights) and to the FFN",
     ["test_decoder_block_dropout_inside_sublayers"]),
    ("param_groups: matrices (p.dim() >= 2) get weight_decay, the rest 0.0; a list of dicts with 'params' and "
     "'weight_decay'", ["test_param_groups_decay_matrices_only", "test_param_groups_by_number_of_dimensions"]),
    ("every trainable parameter is in exactly one group", ["test_param_groups_cover_every_parameter_once"]),
    ("tied weights appear once", ["test_param_groups_count_a_tied_weight_once"]),
    ("names returned by model.no_weight_decay() go in the no-decay group",
     ["test_param_groups_spare_no_weight_decay_names"]),
    ("only parameters with requires_grad=True go in", ["test_param_groups_skip_frozen_parameters"]),
    ("torch.optim.AdamW(param_groups(model, wd)) decays exactly the matrices", ["test_param_groups_in_adamw_step"]),
    ("warmup: max_lr * (step + 1) / (warmup_steps + 1) for step < warmup_steps, max_lr at step == warmup_steps",
     ["test_schedule_linear_warmup", "test_schedule_peak_at_end_of_warmup"]),
    ("half a cosine from max_lr to min_lr over [warmup_steps, total_steps)", ["test_schedule_cosine_decay"]),
    ("min_lr from total_steps on", ["test_schedule_after_total_steps", "test_schedule_warmup_as_long_as_the_run"]),
    ("warmup_steps=0 starts at max_lr; other settings (min_lr=0, long warmup) follow the same formula",
     ["test_schedule_without_warmup", "test_schedule_other_settings"]),
    ("return a Python float", ["test_schedule_returns_a_float"]),
    ("ValueError for a negative step, warmup_steps or total_steps, or unless 0 <= min_lr <= max_lr",
     ["test_schedule_rejects_bad_arguments"]),
    ("train_step: forward, mean cross-entropy over targets != -100, backward, optimizer step; scaler=None works",
     ["test_train_step_one_update"]),
    ("this update's learning rate is lr_schedule(step), set on every group before the optimizer step",
     ["test_train_step_uses_the_schedule_at_this_step"]),
    ("gradients are zeroed after the update, not between micro-batches",
     ["test_train_step_zeroes_gradients_between_steps", "test_train_step_accumulates_micro_batches"]),
    ("gradient accumulation: N micro-batches give the update of the one big batch they form",
     ["test_train_step_accumulates_micro_batches"]),
    ("each micro-batch's loss weighs by its share of the step's counted targets (not 1/N)",
     ["test_train_step_weights_micro_batches_by_targets"]),
    ("grad_clip clips the global gradient norm; grad_norm is the norm before clipping",
     ["test_train_step_clips_the_gradient_norm"]),
    ("with a GradScaler: scaler.scale(loss).backward(), unscale_ before clipping, scaler.step, scaler.update",
     ["test_train_step_unscales_before_clipping", "test_train_step_undoes_the_loss_scale",
      "test_train_step_skips_an_overflowing_update", "test_train_step_updates_the_loss_scale"]),
    ("returns the step's token-weighted loss, n_targets, grad_norm (None without clipping) and lr",
     ["test_train_step_returns_loss_targets_lr", "test_train_step_clips_the_gradient_norm"]),
    ("train_step puts the model in training mode", ["test_train_step_sets_training_mode"]),
    ("amp_dtype: forward passes under torch.autocast with that dtype (weights stay float32)",
     ["test_train_step_bf16_autocast"]),
    ("any model of the course: batch[:-1] are the inputs, batch[-1] the targets; logits (..., C) for targets (...)",
     ["test_train_step_weights_micro_batches_by_targets", "test_train_step_classifier_targets"]),
    ("everything together: AdamW steps with accumulation, scaler, clipping and a schedule",
     ["test_train_step_adamw_run"]),
    ("evaluate: the mean loss over every counted target of all batches (token-weighted), and their number; batches "
     "may be a one-pass iterator", ["test_evaluate_token_weighted_mean", "test_evaluate_classifier_targets"]),
    ("evaluate runs in eval mode, without gradients, and restores the model's mode",
     ["test_evaluate_in_eval_mode", "test_evaluate_without_gradients", "test_evaluate_restores_the_mode"]),
    ("evaluate's amp_dtype: autocast", ["test_evaluate_bf16_autocast"]),
]
D, H, FF = 16, 4, 32
F64 = torch.float64


_ATTN = {"in_proj_weight": "qkv.weight", "in_proj_bias": "qkv.bias", "out_proj.weight": "proj.weight",
         "out_proj.bias": "proj.bias"}
TORCH_TO_OURS = {**{f"self_attn.{k}": f"self_attn.{v}" for k, v in _ATTN.items()},
                 **{f"multihead_attn.{k}": f"cross_attn.{v}" for k, v in _ATTN.items()},
                 "linear1.weight": "ffn.fc1.weight", "linear1.bias": "ffn.fc1.bias",
                 "linear2.weight": "ffn.fc2.weight", "linear2.bias": "ffn.fc2.bias",
                 **{f"norm{i}.{p}": f"norm{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")}}


# --- helpers (all run in the grader) ------------------------------------------------------------------------

def rand(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    """Random float64 values that are exactly representable in float32."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g) * scale).double()


def randomise(module: nn.Module, seed: int) -> None:
    """Random weights (float32-exact); norm gains around 1 so a missing or misplaced norm shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g).double()
            p.copy_(1.0 + 0.3 * noise if name.startswith("norm") and name.endswith("weight") else 0.3 * noise)


def torch_layer(*, norm_first: bool, activation: str = "relu", bias: bool = True, eps: float = 1e-5, seed: int = 0):
    """``nn.TransformerDecoderLayer`` (float64, eval, no dropout) with random weights, and them in our names."""
    layer = nn.TransformerDecoderLayer(D, H, FF, dropout=0.0, activation=activation, batch_first=True,
                                       norm_first=norm_first, bias=bias, layer_norm_eps=eps).double().eval()
    randomise(layer, seed)
    state = {TORCH_TO_OURS[k]: v.detach().clone() for k, v in layer.state_dict().items()}
    return layer, state


def run_layer(layer, x, mem, *, causal=True, tgt_keep=None, mem_keep=None) -> torch.Tensor:
    T = x.size(1)
    with torch.no_grad():
        return layer(x, mem, tgt_mask=~torch.ones(T, T, dtype=torch.bool).tril() if causal else None,
                     tgt_key_padding_mask=None if tgt_keep is None else ~tgt_keep,
                     memory_key_padding_mask=None if mem_keep is None else ~mem_keep)


def lengths_mask(lengths: list[int], S: int) -> torch.Tensor:
    return torch.arange(S)[None, :] < torch.tensor(lengths)[:, None]


def as_padding(keep: torch.Tensor) -> torch.Tensor:
    """(B, S) -> (B, 1, 1, S): the course's key-padding mask layout."""
    return keep[:, None, None, :]


def block_run(impl, state, calls, *, dtype=F64, **init):
    return impl.run_module(BLOCK, (D, H, FF), init, state, calls, dtype=dtype)


def schedule(step: int, *, max_lr: float, min_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Linear warmup max_lr*(step+1)/(warmup_steps+1); half a cosine from max_lr to min_lr over
    [warmup_steps, total_steps); min_lr from total_steps on."""
    if step < warmup_steps:
        return max_lr * (step + 1) / (warmup_steps + 1)
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)


def lr_of(impl, step: int, **kw) -> float:
    v = impl.call(LR, step, **kw)
    if isinstance(v, torch.Tensor) and v.numel() == 1:
        v = float(v)
    assert isinstance(v, (int, float)) and not isinstance(v, bool), \
        f"warmup_cosine_lr must return a number, got {type(v).__name__}"
    return float(v)


def check_lrs(impl, steps, what: str, **kw) -> None:
    for s in steps:
        got, want = lr_of(impl, s, **kw), schedule(s, **kw)
        assert math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-12), \
            f"{what}: warmup_cosine_lr({s}, {', '.join(f'{k}={v}' for k, v in kw.items())}) = {got:.6g}, " \
            f"expected {want:.6g}"


# --- DecoderBlock ---------------------------------------------------------------------------------------------

@pytest.mark.points(1)
@pytest.mark.parametrize("options", [{}, {"norm": "rmsnorm", "ffn": "swiglu", "bias": False}],
                         ids=["default", "rms-swiglu"])
def test_decoder_block_parameter_names(impl, options):
    """DecoderBlock's parameters are named like the reference: norm1, self_attn, norm2, cross_attn, norm3, ffn."""
    want = {k: tuple(v.shape) for k, v in RefDecoderBlock(D, H, FF, **options).state_dict().items()}
    got = impl.param_shapes(BLOCK, (D, H, FF), options)
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    assert not missing and not extra, f"DecoderBlock{options or ''} parameters differ from the reference: missing " \
                                      f"{missing[:6]}, unexpected {extra[:6]}"
    bad = [f"{k}: {got[k]} (expected {want[k]})" for k in want if got[k] != want[k]]
    assert not bad, f"DecoderBlock parameter shapes differ: {'; '.join(bad[:4])}"


@pytest.mark.points(2)
@pytest.mark.parametrize("norm_first", [False, True], ids=["post-LN", "pre-LN"])
def test_decoder_block_matches_torch(impl, norm_first):
    """DecoderBlock equals nn.TransformerDecoderLayer with the same weights (causal target, memory padding mask).

    Checked for norm_first=False (post-LN, the paper) and norm_first=True (pre-LN)."""
    layer, state = torch_layer(norm_first=norm_first, seed=10 + norm_first)
    x, mem = rand(2, 5, D, seed=11), rand(2, 7, D, seed=12)
    mem_keep = lengths_mask([7, 3], 7)
    out = block_run(impl, state, [call("forward", x, mem, memory_mask=as_padding(mem_keep), is_causal=True)],
                    norm_first=norm_first).output
    out = expect_tensor(out, "DecoderBlock output", shape=(2, 5, D))
    assert_close(out, run_layer(layer, x, mem, mem_keep=mem_keep),
                 f"DecoderBlock(norm_first={norm_first}) output vs nn.TransformerDecoderLayer")


@pytest.mark.points(2)
def test_decoder_block_is_causal(impl):
    """Self-attention is causal by default: changing target tokens 4 and 5 leaves the outputs at 0..3 alone; with
    is_causal=False every token sees them."""
    _, state = torch_layer(norm_first=True, seed=20)
    x, mem = rand(2, 6, D, seed=21), rand(2, 4, D, seed=22)
    x2 = x.clone()
    x2[:, 4:] = rand(2, 2, D, seed=23)  # change the last two target tokens
    res = block_run(impl, state, [call("forward", x, mem), call("forward", x2, mem),
                                  call("forward", x, mem, is_causal=False), call("forward", x2, mem, is_causal=False)],
                    norm_first=True)
    causal, full = [expect_tensor(o, "DecoderBlock output", shape=(2, 6, D)) for o in res.outputs[:2]], res.outputs[2:]
    assert_close(causal[1][:, :4], causal[0][:, :4],
                 "outputs at positions 0..3 after changing tokens 4 and 5 (they must not see the future)")
    seen = float((expect_tensor(full[1], "output with is_causal=False", shape=(2, 6, D))[:, :4] - full[0][:, :4]).abs().max())
    assert seen > 1e-6, "with is_causal=False, outputs at positions 0..3 must change when tokens 4 and 5 change"


@pytest.mark.points(1)
def test_decoder_block_target_padding_mask(impl):
    """tgt_mask (a (B, 1, 1, T) target padding mask) hides padded target tokens from self-attention, and the causal
    mask still applies when it is given."""
    _, state = torch_layer(norm_first=False, seed=30)
    x, mem = rand(2, 5, D, seed=31), rand(2, 6, D, seed=32)
    tgt = as_padding(lengths_mask([5, 3], 5))  # row 1: tokens 3 and 4 are padding
    x_pad = x.clone()
    x_pad[1, 3:] = rand(2, D, seed=33, scale=5.0)  # change only the padding
    x_late = x.clone()
    x_late[0, 4] = rand(D, seed=34, scale=5.0)  # change the last (real) token of row 0
    res = block_run(impl, state, [call("forward", x, mem, tgt_mask=tgt, is_causal=False),
                                  call("forward", x_pad, mem, tgt_mask=tgt, is_causal=False),
                                  call("forward", x, mem, tgt_mask=tgt), call("forward", x_late, mem, tgt_mask=tgt)],
                    norm_first=False)
    o = [expect_tensor(v, "DecoderBlock output", shape=(2, 5, D)) for v in res.outputs]
    assert_close(o[1][0], o[0][0], "row 0 after changing row 1's padding (is_causal=False)")
    assert_close(o[1][1, :3], o[0][1, :3], "real tokens of row 1 after changing only its padded tokens: tgt_mask must "
                                           "hide them (is_causal=False)")
    assert_close(o[3][0, :4], o[2][0, :4], "outputs 0..3 of row 0 after changing its token 4, with tgt_mask given: "
                                           "the causal mask must apply together with tgt_mask")


@pytest.mark.points(2)
def test_decoder_block_memory_mask_hides_padding(impl):
    """memory_mask hides padded memory positions from cross-attention: changing them changes nothing, while changing
    a real memory position does change the output."""
    _, state = torch_layer(norm_first=True, seed=40)
    x, mem = rand(3, 4, D, seed=41), rand(3, 6, D, seed=42)
    mem_keep = lengths_mask([6, 2, 4], 6)
    mem2 = torch.where(mem_keep[..., None], mem, rand(3, 6, D, seed=43, scale=5.0))
    mem3 = mem.clone()
    mem3[:, 0] = rand(3, D, seed=44, scale=5.0)
    kw = {"memory_mask": as_padding(mem_keep), "is_causal": False}
    res = block_run(impl, state, [call("forward", x, m, **kw) for m in (mem, mem2, mem3)], norm_first=True)
    o = [expect_tensor(v, "DecoderBlock output", shape=(3, 4, D)) for v in res.outputs]
    assert_close(o[1], o[0], "DecoderBlock output after changing only the masked memory positions")
    assert float((o[2] - o[0]).abs().max()) > 1e-6, \
        "changing the first (real) memory position of every row left the output unchanged: cross-attention must " \
        "read the memory"


@pytest.mark.points(1)
def test_decoder_block_gelu_without_bias(impl):
    """ffn="gelu", bias=False equals nn.TransformerDecoderLayer(activation="gelu", bias=False) (no bias anywhere)."""
    layer, state = torch_layer(norm_first=True, activation="gelu", bias=False, seed=50)
    x, mem = rand(2, 5, D, seed=51), rand(2, 3, D, seed=52)
    out = block_run(impl, state, [call("forward", x, mem, is_causal=False)], norm_first=True, ffn="gelu",
                    bias=False).output
    assert_close(out, run_layer(layer, x, mem, causal=False), "DecoderBlock(ffn='gelu', bias=False) output")


@pytest.mark.points(1)
def test_decoder_block_rmsnorm_swiglu(impl):
    """norm="rmsnorm", ffn="swiglu" (no PyTorch layer has these) equals the reference block with the same weights."""
    ref = RefDecoderBlock(D, H, FF, norm="rmsnorm", ffn="swiglu", norm_first=True, eps=1e-6).double().eval()
    randomise(ref, 60)
    state = {k: v.detach().clone() for k, v in ref.state_dict().items()}
    x, mem = rand(2, 5, D, seed=61), rand(2, 4, D, seed=62)
    out = block_run(impl, state, [call("forward", x, mem, is_causal=False)], norm="rmsnorm", ffn="swiglu",
                    eps=1e-6).output
    with torch.no_grad():
        want = ref(x, mem, is_causal=False)
    assert_close(out, want, "DecoderBlock(norm='rmsnorm', ffn='swiglu', eps=1e-6) output")


@pytest.mark.points(2)
def test_decoder_block_gradients(impl):
    """Gradients w.r.t. x, memory and every parameter equal nn.TransformerDecoderLayer's (post-LN, memory mask on,
    is_causal=False)."""
    layer, state = torch_layer(norm_first=False, seed=70)
    x, mem = rand(2, 4, D, seed=71), rand(2, 5, D, seed=72)
    mem_keep = lengths_mask([5, 3], 5)
    g = rand(2, 4, D, seed=73)
    res = impl.run_module(BLOCK, (D, H, FF), {"norm_first": False}, state,
                          [call("forward", x, mem, memory_mask=as_padding(mem_keep), is_causal=False)], backward=g,
                          dtype=F64)
    xl, ml = x.clone().requires_grad_(), mem.clone().requires_grad_()
    layer(xl, ml, memory_key_padding_mask=~mem_keep).backward(g)
    assert len(res.input_grads) >= 2 and res.input_grads[0] is not None and res.input_grads[1] is not None, \
        "no gradient reached x or memory"
    assert_close(res.input_grads[0], xl.grad, "gradient w.r.t. x")
    assert_close(res.input_grads[1], ml.grad, "gradient w.r.t. memory")
    for tname, p in layer.named_parameters():
        name = TORCH_TO_OURS[tname]
        got = res.param_grads.get(name)
        assert got is not None, f"no gradient reached {name}"
        assert_close(got, p.grad, f"gradient w.r.t. {name}")


@pytest.mark.points(1)
def test_decoder_block_dropout_only_in_training(impl):
    """dropout=0.5 changes the output in training mode only; in eval mode the block equals the same block built with
    dropout=0.0."""
    _, state = torch_layer(norm_first=True, seed=80)
    x, mem = rand(2, 5, D, seed=81), rand(2, 4, D, seed=82)
    ev = block_run(impl, state, [call("forward", x, mem, is_causal=False)], norm_first=True, dropout=0.5).output
    plain = block_run(impl, state, [call("forward", x, mem, is_causal=False)], norm_first=True, dropout=0.0).output
    assert_close(ev, expect_tensor(plain, "output with dropout=0.0", shape=(2, 5, D)),
                 "eval-mode output with dropout=0.5 vs dropout=0.0 (dropout must be off in eval mode)")
    tr = impl.run_module(BLOCK, (D, H, FF), {"dropout": 0.5}, state, [call("forward", x, mem, is_causal=False)],
                         dtype=F64, train=True).output
    tr = expect_tensor(tr, "training-mode output", shape=(2, 5, D))
    assert (tr - ev).abs().max() > 1e-3, "dropout=0.5 in training mode left the output unchanged"


@pytest.mark.points(1)
def test_decoder_block_eps_reaches_every_norm(impl):
    """eps is passed to all three norms: eps=0.5 equals nn.TransformerDecoderLayer(layer_norm_eps=0.5), post-LN and
    pre-LN."""
    for norm_first in (False, True):
        layer, state = torch_layer(norm_first=norm_first, eps=0.5, seed=55 + norm_first)
        x, mem = rand(2, 4, D, seed=56, scale=0.5), rand(2, 3, D, seed=57)
        out = block_run(impl, state, [call("forward", x, mem, is_causal=False)], norm_first=norm_first, eps=0.5).output
        assert_close(out, run_layer(layer, x, mem, causal=False), f"DecoderBlock(eps=0.5, norm_first={norm_first}) output")


# Dropout, by structure and statistics (no random stream is compared): in a pre-LN block whose other two
# sub-layers are switched off (output layer zero), out - x is exactly the one sub-layer's dropped-out output.
SUBLAYERS = {"self-attention": "self_attn.proj", "cross-attention": "cross_attn.proj", "FFN": "ffn.fc2"}
P_DROP = 0.5


def one_sublayer_in_training(impl, active: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``(out - x in training mode, out - x in eval mode)`` of the implementation's block with only ``active`` on, every
    token and memory row alike (so the mean over positions estimates the expectation)."""
    ref = RefDecoderBlock(D, H, FF, dropout=P_DROP).double()
    randomise(ref, 90 + list(SUBLAYERS).index(active))
    with torch.no_grad():
        for name, prefix in SUBLAYERS.items():
            if name != active:
                ref.get_parameter(prefix + ".weight").zero_()
                ref.get_parameter(prefix + ".bias").zero_()
    state = {k: v.detach().clone() for k, v in ref.state_dict().items()}
    x = rand(1, 1, D, seed=95).expand(64, 8, D).clone()
    mem = rand(1, 1, D, seed=96).expand(64, 3, D).clone()
    res = impl.run_module(BLOCK, (D, H, FF), {"dropout": P_DROP}, state,
                          [call("forward", x, mem), call("eval"), call("forward", x, mem)], dtype=F64, train=True)
    out = expect_tensor(res.outputs[0], f"training-mode output ({active} only)", shape=tuple(x.shape))
    ev = expect_tensor(res.outputs[2], f"eval-mode output ({active} only)", shape=tuple(x.shape))
    return out - x, ev - x


@pytest.mark.points(2)
def test_decoder_block_sublayer_dropout(impl):
    """In training mode each sub-layer's output (self-attention, cross-attention, FFN) goes through dropout before it
    is added to the residual stream: about p of its entries are zero, the rest scaled by 1/(1-p) (the mean is kept)."""
    for active in SUBLAYERS:
        d, f_eval = one_sublayer_in_training(impl, active)
        zeros = float((d == 0).double().mean())
        assert 0.35 < zeros < 0.65, \
            f"{active} sub-layer alone, dropout={P_DROP}, training mode: {zeros:.0%} of out - x is exactly zero, " \
            f"expected about {P_DROP:.0%}: apply its dropout (dropout1/2/3) to the sub-layer's output, before the " \
            f"residual addition x + dropout(sublayer(...))"
        mean, want = d.mean((0, 1)), f_eval.mean((0, 1))
        rel = float((mean - want).norm() / want.norm())
        assert rel < 0.25, f"{active} sub-layer alone: the mean of out - x over 512 positions in training mode is " \
                           f"off from its eval-mode value by {rel:.0%}: dropout must rescale what it keeps by 1/(1-p)"


@pytest.mark.points(1)
def test_decoder_block_dropout_inside_sublayers(impl):
    """dropout also reaches both attentions (on their attention weights) and the FFN (after its activation): the kept
    entries of a sub-layer's output are not just its eval-mode output times 1/(1-p)."""
    for active in SUBLAYERS:
        d, f_eval = one_sublayer_in_training(impl, active)
        kept = d != 0
        differs = (d - f_eval / (1 - P_DROP)).abs() > 1e-9 * (1 + f_eval.abs())
        frac = float((differs & kept).double().sum() / kept.double().sum().clamp(min=1))
        where = "MultiHeadAttention(..., dropout=dropout)" if active != "FFN" else "build_ffn(..., dropout=dropout)"
        assert frac > 0.3, f"{active} sub-layer alone, dropout={P_DROP}, training mode: its kept outputs are exactly " \
                           f"the eval-mode ones times 1/(1-p), so nothing inside it drops: build it with {where}"


# --- param_groups ---------------------------------------------------------------------------------------------

def _reference_encoder(seed: int = 0) -> nn.Module:
    """The model ``obj_spec("EncoderBlock", D, H, FF)`` builds in the implementation (same seed, same values)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return RefEncoderBlock(D, H, FF)


def _groups(impl, wd: float, model: dict | None = None) -> list[dict]:
    objects = {"model": model or obj_spec("EncoderBlock", D, H, FF)}
    try:
        n = impl.run_module(GROUPS, (Ref("model"), wd), objects=objects, calls=[call("__len__")]).output
        items = impl.run_module(GROUPS, (Ref("model"), wd), objects=objects,
                                calls=[call("__getitem__", i) for i in range(int(n))]).outputs
    except StudentError as e:
        if e.type_name in ("AttributeError", "TypeError") and ("__len__" in e.message or "__getitem__" in e.message
                                                                or "subscriptable" in e.message):
            raise AssertionError("param_groups must return a list of dicts (optimizer parameter groups)") from None
        raise
    for i, g in enumerate(items):
        assert isinstance(g, dict) and "params" in g, f"group {i} must be a dict with 'params', got {type(g).__name__}"
        assert "weight_decay" in g, f"group {i} has no 'weight_decay' (set it in every group: 0.0 for no decay)"
        assert isinstance(g["params"], (list, tuple)), f"group {i}: 'params' must be a list of parameters"
    return items


def _key(t: torch.Tensor) -> tuple:
    return tuple(t.shape), t.detach().float().contiguous().numpy().tobytes()


@pytest.mark.points(2)
def test_param_groups_decay_matrices_only(impl):
    """Matrices (ndim >= 2) get weight_decay; biases and norm parameters (ndim < 2) get 0.0."""
    items = _groups(impl, 0.1)
    for i, g in enumerate(items):
        wd = float(g["weight_decay"])
        assert wd in (0.0, 0.1), f"group {i} has weight_decay={wd}; use the weight_decay argument (0.1) or 0.0"
        for p in g["params"]:
            p = expect_tensor(p, f"a parameter in group {i}")
            if p.dim() >= 2:
                assert wd == 0.1, f"a {p.dim()}-D parameter of shape {tuple(p.shape)} is in a group with " \
                                  f"weight_decay={wd}: matrices must be decayed"
            else:
                assert wd == 0.0, f"a 1-D parameter of shape {tuple(p.shape)} (bias or norm) is decayed with " \
                                  f"weight_decay={wd}"


@pytest.mark.points(2)
def test_param_groups_cover_every_parameter_once(impl):
    """Every trainable parameter is in exactly one group (none missing, none twice)."""
    items = _groups(impl, 0.1)
    model = _reference_encoder()
    want = Counter(_key(p) for p in model.parameters())
    got = Counter(_key(p) for g in items for p in g["params"])
    n_want, n_got = sum(want.values()), sum(got.values())
    assert n_got == n_want, f"the groups hold {n_got} parameters; the model has {n_want} trainable parameters"
    extra = got - want
    names = {_key(p): n for n, p in model.named_parameters()}
    assert not extra, f"a parameter appears more than once, or is not the model's: " \
                      f"{sorted(names.get(k, '?') for k in extra)[:4]}"
    missing = want - got
    assert not missing, f"parameters missing from the groups: {sorted(names[k] for k in missing)[:6]}"


@pytest.mark.points(1)
def test_param_groups_count_a_tied_weight_once(impl):
    """A matrix shared by two modules (a tied embedding and output head) is one parameter: it appears in one group,
    once. (Listed twice, AdamW would update it twice per step, or refuse the groups.)"""
    vocab = 11
    items = _groups(impl, 0.1, obj_spec("fixture:tied_lm", vocab, D))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = TiedLM(vocab, D)
    tied = _key(model.tok_emb.weight)
    got = Counter(_key(p) for g in items for p in g["params"])
    assert got[tied] == 1, f"the tied (vocab, d_model) matrix appears {got[tied]} times in the groups; collect " \
                           f"parameters so that a shared one is listed once (model.named_parameters() does)"
    want = Counter(_key(p) for p in model.parameters())
    assert got == want, f"the groups hold {sum(got.values())} parameters; the model has {sum(want.values())} " \
                        f"distinct trainable parameters"


def _zoo_groups(impl) -> tuple[dict[tuple, float], dict[str, tuple]]:
    """param_groups(GroupsZoo(), 0.1): ``{parameter key: weight_decay of its group}`` (keys listed twice count once
    here; another test checks duplicates) and ``{name: key}`` of the grader's copy of the zoo."""
    items = _groups(impl, 0.1, obj_spec("fixture:groups_zoo"))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        zoo = GroupsZoo()
    where = {_key(p): float(g["weight_decay"]) for g in items for p in g["params"]}
    return where, {n: _key(p) for n, p in zoo.named_parameters()}


@pytest.mark.points(1)
def test_param_groups_spare_no_weight_decay_names(impl):
    """A parameter named by the model's no_weight_decay() (here a (5, 6) position table) is in the weight_decay=0.0
    group, although it is a matrix."""
    where, key = _zoo_groups(impl)
    assert key["pos"] in where, "the parameter 'pos' named by no_weight_decay() is in no group: it must still be " \
                                "trained, in the weight_decay=0.0 group"
    assert where[key["pos"]] == 0.0, f"'pos' (named by model.no_weight_decay()) is decayed with weight_decay=" \
                                     f"{where[key['pos']]}; spare the names no_weight_decay() returns"


@pytest.mark.points(1)
def test_param_groups_skip_frozen_parameters(impl):
    """Parameters with requires_grad=False (a frozen matrix and a frozen vector) are in no group."""
    where, key = _zoo_groups(impl)
    listed = [n for n in ("frozen", "frozen_bias") if key[n] in where]
    assert not listed, f"frozen parameters (requires_grad=False) are in the groups: {listed}; leave them out"


@pytest.mark.points(1)
def test_param_groups_by_number_of_dimensions(impl):
    """Every parameter with 2 or more dimensions is decayed (also a 4-D convolution kernel); every one with fewer is
    not (also a 0-D scalar)."""
    where, key = _zoo_groups(impl)
    for name, want in (("conv.weight", 0.1), ("emb.weight", 0.1), ("lin.weight", 0.1), ("temperature", 0.0),
                       ("conv.bias", 0.0), ("norm.weight", 0.0)):
        assert key[name] in where, f"{name} is in no group (every trainable parameter must be in one)"
        assert where[key[name]] == want, f"{name} is in the group with weight_decay={where[key[name]]}; expected " \
                                         f"{want} (decay exactly the parameters with p.dim() >= 2)"


def _train_encoder(impl, wd: float, state: dict, x, y) -> dict:
    try:
        return impl.train("EncoderBlock", {"d_model": D, "n_heads": H, "d_ff": FF}, x, y, state_dict=state,
                          steps=1, lr=0.1, weight_decay=wd, use_param_groups=True)["state_dict"]
    except StudentError as e:
        raise AssertionError(f"AdamW could not use the groups from param_groups: {e.type_name}: {e.message}") from None


@pytest.mark.points(2)
def test_param_groups_in_adamw_step(impl):
    """In an AdamW step over param_groups, matrices decay by lr*weight_decay*p, the rest not, and all are updated.

    Measured in the implementation's own training loop as the difference of two one-step runs, with weight_decay
    0.5 and 0.0."""
    model = _reference_encoder(seed=3)
    randomise(model, 90)
    state = {k: v.detach().float().clone() for k, v in model.state_dict().items()}
    x, y = rand(2, 5, D, seed=91).float(), rand(2, 5, D, seed=92).float()
    lr, wd = 0.1, 0.5
    decayed, plain = _train_encoder(impl, wd, state, x, y), _train_encoder(impl, 0.0, state, x, y)
    for name, p0 in state.items():
        moved = (plain[name] - p0).abs().max()
        assert moved > lr / 2, f"{name} was not updated by AdamW: it is in no parameter group"
        want = lr * wd * p0 if p0.dim() >= 2 else torch.zeros_like(p0)
        how = "decayed" if p0.dim() >= 2 else "not decayed"
        assert_close(plain[name] - decayed[name], want, f"{name} ({p0.dim()}-D, must be {how}): weight-decay part "
                     f"of one AdamW step, lr={lr}, weight_decay={wd}", rtol=1e-3, atol=1e-6)


# --- warmup_cosine_lr ---------------------------------------------------------------------------------------

SCHED = {"max_lr": 1e-3, "min_lr": 1e-4, "warmup_steps": 10, "total_steps": 50}


@pytest.mark.points(2)
def test_schedule_linear_warmup(impl):
    """During warmup the rate rises linearly: max_lr * (step + 1) / (warmup_steps + 1) for step < warmup_steps."""
    check_lrs(impl, range(10), "warmup", **SCHED)


@pytest.mark.points(1)
def test_schedule_peak_at_end_of_warmup(impl):
    """At step == warmup_steps the rate is exactly max_lr."""
    check_lrs(impl, [10], "peak", **SCHED)
    check_lrs(impl, [3], "peak", max_lr=0.5, min_lr=0.0, warmup_steps=3, total_steps=7)


@pytest.mark.points(2)
def test_schedule_cosine_decay(impl):
    """After warmup the rate follows half a cosine from max_lr to min_lr; halfway it is (max_lr + min_lr) / 2."""
    check_lrs(impl, [30], "cosine midpoint", **SCHED)
    check_lrs(impl, [11, 17, 24, 36, 42, 49], "cosine decay", **SCHED)


@pytest.mark.points(2)
def test_schedule_after_total_steps(impl):
    """At total_steps the rate reaches min_lr (not 0) and stays there for every later step."""
    check_lrs(impl, [50, 51, 75, 500], "after total_steps", **SCHED)


@pytest.mark.points(1)
def test_schedule_without_warmup(impl):
    """warmup_steps=0: the first step already uses max_lr, then the cosine starts."""
    kw = {"max_lr": 2e-3, "min_lr": 2e-4, "warmup_steps": 0, "total_steps": 20}
    check_lrs(impl, [0, 1, 5, 10, 19, 20, 21], "warmup_steps=0", **kw)


@pytest.mark.points(1)
def test_schedule_other_settings(impl):
    """Other settings follow the same formula (min_lr=0, a long warmup, an odd length)."""
    check_lrs(impl, [0, 6, 99, 100, 101, 150, 199, 200], "max_lr=0.1, min_lr=0", max_lr=0.1, min_lr=0.0,
              warmup_steps=100, total_steps=200)
    check_lrs(impl, [0, 1, 2, 3, 4, 5, 6], "max_lr=1, min_lr=0.25, warmup 2, total 5", max_lr=1.0, min_lr=0.25,
              warmup_steps=2, total_steps=5)


@pytest.mark.points(1)
def test_schedule_warmup_as_long_as_the_run(impl):
    """warmup_steps == total_steps: warmup over the whole run, then min_lr (there is no cosine part)."""
    check_lrs(impl, [0, 2, 5, 6, 7, 20], "warmup_steps == total_steps", max_lr=0.5, min_lr=0.05, warmup_steps=6,
              total_steps=6)


@pytest.mark.points(1)
def test_schedule_returns_a_float(impl):
    """The rate is a Python float in the warmup, in the cosine and after total_steps."""
    for step in (2, 20, 60):
        v = impl.call(LR, step, **SCHED)
        assert type(v) is float, f"warmup_cosine_lr({step}, ...) returned a {type(v).__name__}; return a Python " \
                                 f"float (use math, not torch, for the cosine)"


@pytest.mark.points(1)
def test_schedule_rejects_bad_arguments(impl):
    """ValueError for a negative step, warmup_steps or total_steps and unless 0 <= min_lr <= max_lr; the edge cases
    min_lr == max_lr and min_lr == 0 are accepted."""
    for ok in ({"min_lr": 1e-3}, {"min_lr": 0.0}):
        res = impl.outcome(LR, 5, **{**SCHED, **ok})
        assert res.ok, f"warmup_cosine_lr(5, ... {ok}) raised {res.error_type}: {res.message}; it is a valid setting"
    for bad in ({"step": -1}, {"warmup_steps": -2}, {"total_steps": -1}, {"min_lr": 2e-3}, {"min_lr": -1e-4}):
        kw = {"step": 5, **SCHED, **bad}
        step = kw.pop("step")
        res = impl.outcome(LR, step, **kw)
        assert not res.ok and res.error_type == "ValueError", \
            f"warmup_cosine_lr with {bad} must raise ValueError, got " + \
            (f"{res.value!r}" if res.ok else f"{res.error_type}: {res.message}")


# --- train_step -----------------------------------------------------------------------------------------------
# Every scenario is built inside the implementation from grader-defined fixtures (tfmcourse.grading.fixtures):
# a tiny model that records the mode, grad state and autocast dtype of each forward pass, an optimizer over it,
# a GradScaler and a learning-rate table. The grader builds the same model from the same seed and computes
# what the step must do from its definition: the sum of every counted target's cross-entropy over the step's
# micro-batches, divided by their number, then clipping, the learning rate of this step, the update.

PROBES = {"lm": ProbeLM, "seq2seq": ProbeSeq2Seq, "classifier": ProbeClassifier}
BF16 = torch.bfloat16


def ints(*shape: int, seed: int, high: int = 11) -> torch.Tensor:
    return torch.randint(0, high, shape, generator=torch.Generator().manual_seed(seed))


def padded(targets: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """Targets after each row's length become -100 (padding)."""
    keep = torch.arange(targets.size(1))[None, :] < torch.tensor(lengths)[:, None]
    return targets.masked_fill(~keep, -100)


def lm_batch(B: int, T: int, seed: int, lengths: list[int] | None = None) -> tuple:
    targets = ints(B, T, seed=seed + 1)
    return ints(B, T, seed=seed), padded(targets, lengths) if lengths else targets


def s2s_batch(B: int, S: int, T: int, seed: int, lengths: list[int]) -> tuple:
    return ints(B, S, seed=seed), ints(B, T, seed=seed + 1), padded(ints(B, T, seed=seed + 2), lengths)


def clf_batch(B: int, seed: int) -> tuple:
    return rand(B, 6, seed=seed).float(), ints(B, seed=seed + 1, high=5)


def n_counted(micro: list) -> int:
    return sum(int((b[-1] != -100).sum()) for b in micro)


def expected_steps(kind: str, steps: list[list[tuple]], lrs: list[float], *, first_step: int = 0,
                   clip: float | None = None, amp: torch.dtype | None = None, optimizer: str = "sgd",
                   seed: int = 0) -> tuple[dict, dict, list[dict]]:
    """The training run by definition, in the grader: initial state, final state, per step
    ``{loss, n_targets, grad_norm, lr}`` (loss and norm before that step's update)."""
    model = PROBES[kind](seed=seed)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    opt = FIXTURES[optimizer](model, lr=0.0, **({"weight_decay": 0.1} if optimizer == "adamw" else {}))
    records = []
    for i, micro in enumerate(steps):
        n = n_counted(micro)
        total = 0.0
        for b in micro:
            with torch.autocast("cpu", dtype=amp or BF16, enabled=amp is not None):
                logits = model(*b[:-1])[0]
            loss = F.cross_entropy(logits.flatten(0, -2).float(), b[-1].flatten(), ignore_index=-100,
                                   reduction="sum") / n
            loss.backward()
            total += float(loss.detach())
        norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip)) if clip is not None else None
        lr = lrs[first_step + i]
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        opt.zero_grad(set_to_none=True)
        records.append({"loss": total, "n_targets": n, "grad_norm": norm, "lr": lr})
    return before, {k: v.detach().clone() for k, v in model.state_dict().items()}, records


def run_steps(impl, kind: str, steps: list[list[tuple]], lrs: list[float], *, first_step: int = 0,
              clip: float | None = None, amp: torch.dtype | None = None, scaler: dict | None = None,
              optimizer: str = "sgd", eval_mode: bool = False, seed: int = 0, defaults: bool = False) -> dict:
    """Call the implementation's train_step once per entry of ``steps`` (steps first_step, first_step + 1, ...)
    on fixtures built in its process; return ``{"first", "last", "state", "seen", "asked", "scale"}``.

    The optimizer starts with ``lr=lrs[0]`` and the table ends with two more steps at ``lrs[-1]``, so that a
    schedule read one step late, or set after the update, shows only where the table's values differ.
    ``scaler`` builds ``fixture:grad_scaler(**scaler)``; ``defaults=True`` passes only the required arguments."""
    extra = {"weight_decay": 0.1} if optimizer == "adamw" else {}
    objects = {"model": obj_spec(f"fixture:probe_{kind}", seed=seed, eval_mode=eval_mode),
               "opt": obj_spec(f"fixture:{optimizer}", Ref("model"), lr=lrs[0], **extra),
               "sched": obj_spec("fixture:lr_table", list(lrs) + [lrs[-1]] * 2)}
    kw: dict = {"lr_schedule": Ref("sched")}
    if not defaults:
        objects["scaler"] = obj_spec("fixture:grad_scaler", **(scaler or {"enabled": False}))
        kw.update(scaler=Ref("scaler"), grad_clip=clip, amp_dtype=amp)
    calls = [fcall(STEP, Ref("model"), Ref("opt"), micro, step=first_step + i, **kw) for i, micro in enumerate(steps)]
    reads = [call("state_dict", target="model"), attr("seen", target="model"), attr("calls", target="sched")]
    if not defaults:
        reads.append(call("get_scale", target="scaler"))
    res = impl.run_module(STEP, (Ref("model"), Ref("opt"), steps[0]), {"step": first_step, **kw}, objects=objects,
                          calls=[get()] + calls[1:] + reads)
    outs = res.outputs
    k = len(steps)
    return {"first": outs[0], "last": outs[k - 1], "state": outs[k], "seen": outs[k + 1], "asked": outs[k + 2],
            "scale": outs[k + 3] if not defaults else None}


def check_weights(got: dict, before: dict, want: dict, what: str, *, rtol: float = 1e-4, atol: float = 1e-7) -> None:
    """The implementation's update of every parameter (after - before) equals the expected one."""
    assert isinstance(got, dict) and set(got) == set(want), f"{what}: the model's parameters came back incomplete"
    for name in want:
        assert_finite(expect_tensor(got[name], f"{what}: {name}"), f"{what}: {name}")
        assert_close(got[name] - before[name], want[name] - before[name],
                     f"{what}: the update of {name} (its value after minus before)", rtol=rtol, atol=atol)


def _value(out: dict, key: str, what: str) -> float | None:
    assert isinstance(out, dict), f"train_step must return a dict with {what}, got {type(out).__name__}"
    assert key in out, f"train_step's result has no {key!r} (it must hold loss, n_targets, grad_norm and lr)"
    v = out[key]
    if v is None:
        return None
    if isinstance(v, torch.Tensor):
        assert v.numel() == 1, f"train_step's {key!r} must be a single number, got a tensor of shape {tuple(v.shape)}"
        return float(v)
    assert isinstance(v, (int, float)) and not isinstance(v, bool), f"train_step's {key!r} must be a number"
    return float(v)


LRS = [0.3, 0.5, 0.7, 0.9, 1.1, 1.3]


@pytest.mark.points(2)
def test_train_step_one_update(impl):
    """One step on one batch (padding targets -100 ignored) with only the required arguments: forward, mean
    cross-entropy over the counted targets, backward, an SGD update with the schedule's learning rate."""
    steps = [[lm_batch(3, 5, seed=200, lengths=[5, 2, 4])]]
    out = run_steps(impl, "lm", steps, [0.5], defaults=True)
    before, want, _ = expected_steps("lm", steps, [0.5])
    check_weights(out["state"], before, want, "one train_step")


@pytest.mark.points(2)
def test_train_step_uses_the_schedule_at_this_step(impl):
    """The update uses lr_schedule(step) for the step it is given (here step=3 of a table), set on every parameter
    group (here two) before the update."""
    steps = [[lm_batch(2, 4, seed=210)]]
    out = run_steps(impl, "lm", steps, LRS, first_step=3)
    before, want, _ = expected_steps("lm", steps, LRS, first_step=3)
    check_weights(out["state"], before, want, f"train_step(step=3) with lr_schedule(3) = {LRS[3]} (a step's "
                  f"learning rate is set before optimizer.step(); step 4 would be {LRS[4]})")


@pytest.mark.points(1)
def test_train_step_zeroes_gradients_between_steps(impl):
    """Three steps in a row: each update uses only its own step's gradients (they are zeroed after the update)."""
    steps = [[lm_batch(2, 4, seed=220 + i)] for i in range(3)]
    lrs = [0.5, 0.5, 0.5]
    out = run_steps(impl, "lm", steps, lrs)
    before, want, _ = expected_steps("lm", steps, lrs)
    check_weights(out["state"], before, want, "three train_steps in a row")


@pytest.mark.points(2)
def test_train_step_accumulates_micro_batches(impl):
    """Three micro-batches of equal size make one update equal to one step on the big batch they form."""
    steps = [[lm_batch(2, 4, seed=230 + 3 * i) for i in range(3)]]
    out = run_steps(impl, "lm", steps, [1.0])
    before, want, _ = expected_steps("lm", steps, [1.0])
    check_weights(out["state"], before, want, "one train_step over 3 micro-batches of 8 targets each")


@pytest.mark.points(2)
def test_train_step_weights_micro_batches_by_targets(impl):
    """Micro-batches with different numbers of counted targets (seq2seq with padding) weigh by their share of the
    step's targets: the update equals the big batch's (the mean over all its targets), not a mean of means."""
    steps = [[s2s_batch(2, 3, 6, seed=240, lengths=[6, 6]), s2s_batch(2, 3, 6, seed=243, lengths=[1, 1])]]
    out = run_steps(impl, "seq2seq", steps, [1.0])
    before, want, _ = expected_steps("seq2seq", steps, [1.0])
    check_weights(out["state"], before, want, "one train_step over micro-batches of 12 and 2 counted targets")


@pytest.mark.points(2)
def test_train_step_clips_the_gradient_norm(impl):
    """With grad_clip, the gradient is clipped to that global norm before the update, and train_step returns the
    norm before clipping as grad_norm."""
    steps = [[lm_batch(3, 4, seed=250)]]
    out = run_steps(impl, "lm", steps, [1.0], clip=0.05)
    before, want, rec = expected_steps("lm", steps, [1.0], clip=0.05)
    assert rec[0]["grad_norm"] > 0.1, "grader bug: the test needs a gradient larger than the threshold"
    check_weights(out["state"], before, want, "train_step(grad_clip=0.05)")
    norm = _value(out["first"], "grad_norm", "grad_norm")
    assert norm is not None and math.isclose(norm, rec[0]["grad_norm"], rel_tol=1e-4), \
        f"returned grad_norm {norm}, expected {rec[0]['grad_norm']:.6g} (the norm before clipping, as " \
        f"clip_grad_norm_ returns it)"


@pytest.mark.points(2)
def test_train_step_unscales_before_clipping(impl):
    """With a GradScaler (scale 2**10) and grad_clip, the gradients are unscaled before they are clipped."""
    steps = [[lm_batch(3, 4, seed=260)]]
    out = run_steps(impl, "lm", steps, [1.0], clip=0.05, scaler={"init_scale": 2.0**10})
    before, want, _ = expected_steps("lm", steps, [1.0], clip=0.05)
    check_weights(out["state"], before, want, "train_step(grad_clip=0.05) with a GradScaler of scale 2**10 (clip "
                  "after scaler.unscale_(optimizer))")


@pytest.mark.points(1)
def test_train_step_undoes_the_loss_scale(impl):
    """With a GradScaler (scale 2**10) and no clipping, the update is the unscaled one (scaler.scale(loss).backward(),
    then scaler.step(optimizer))."""
    steps = [[lm_batch(3, 4, seed=270)]]
    out = run_steps(impl, "lm", steps, [0.5], scaler={"init_scale": 2.0**10})
    before, want, _ = expected_steps("lm", steps, [0.5])
    check_weights(out["state"], before, want, "train_step with a GradScaler of scale 2**10")


@pytest.mark.points(1)
def test_train_step_skips_an_overflowing_update(impl):
    """When the scaled gradients overflow (here every one: a loss scale of inf), the scaler skips the update: the
    weights stay as they were."""
    steps = [[lm_batch(3, 4, seed=280)]]
    before = PROBES["lm"](seed=0).state_dict()
    finite = run_steps(impl, "lm", steps, [0.5], scaler={"init_scale": 2.0**10})  # a step that must update
    moved = [n for n, p0 in before.items() if isinstance(finite["state"].get(n), torch.Tensor)
             and finite["state"][n].shape == p0.shape and not torch.equal(finite["state"][n], p0)]
    assert moved, "with a finite loss scale train_step changed no weight: it must update them"
    out = run_steps(impl, "lm", steps, [0.5], scaler={"init_scale": math.inf})
    for name, p0 in before.items():
        got = expect_tensor(out["state"].get(name), f"{name} after the step")
        assert_close(got, p0, f"{name} after a step whose gradients overflowed (let scaler.step(optimizer) skip it)",
                     rtol=0.0, atol=0.0)


@pytest.mark.points(1)
def test_train_step_updates_the_loss_scale(impl):
    """scaler.update() runs after every step: with growth_interval=1 the scale doubles each step (2**10 -> 2**12)."""
    steps = [[lm_batch(2, 4, seed=290)], [lm_batch(2, 4, seed=292)]]
    out = run_steps(impl, "lm", steps, [0.1, 0.1], scaler={"init_scale": 2.0**10, "growth_interval": 1})
    assert out["scale"] == 2.0**12, f"the GradScaler's scale after two steps is {out['scale']:g}, expected " \
                                    f"{2.0**12:g}: call scaler.update() once per step, after scaler.step(optimizer)"


@pytest.mark.points(2)
def test_train_step_returns_loss_targets_lr(impl):
    """train_step returns the step's loss (the mean over all its counted targets, before the update), the number of
    counted targets, the learning rate used, and grad_norm=None when it does not clip."""
    steps = [[s2s_batch(2, 3, 5, seed=300, lengths=[5, 4]), s2s_batch(2, 3, 5, seed=303, lengths=[2, 1])]]
    out = run_steps(impl, "seq2seq", steps, LRS, first_step=2)
    _, _, rec = expected_steps("seq2seq", steps, LRS, first_step=2)
    r = out["first"]
    got = {k: _value(r, k, "loss, n_targets, grad_norm and lr") for k in ("loss", "n_targets", "grad_norm", "lr")}
    want = rec[0]
    assert math.isclose(got["loss"], want["loss"], rel_tol=1e-5), \
        f"returned loss {got['loss']:.6g}, expected {want['loss']:.6g} (the mean over all 12 counted targets of " \
        f"the two micro-batches)"
    assert got["n_targets"] == want["n_targets"], f"returned n_targets {got['n_targets']:g}, expected {want['n_targets']}"
    assert got["lr"] == want["lr"], f"returned lr {got['lr']}, expected lr_schedule(2) = {want['lr']}"
    assert got["grad_norm"] is None, f"returned grad_norm {got['grad_norm']} without grad_clip; expected None"


@pytest.mark.points(1)
def test_train_step_sets_training_mode(impl):
    """train_step puts the model in training mode (here it comes in eval mode, as after an evaluation)."""
    out = run_steps(impl, "lm", [[lm_batch(2, 4, seed=310)]], [0.1], eval_mode=True)
    modes = [s[0] for s in out["seen"]]
    assert modes and all(modes), f"the model ran its forward passes with training={modes}: call model.train()"


@pytest.mark.points(2)
def test_train_step_bf16_autocast(impl):
    """amp_dtype=torch.bfloat16 runs every forward pass under bf16 autocast (weights stay float32), and the update
    matches the grader's autocast step."""
    steps = [[lm_batch(3, 4, seed=322, lengths=[4, 1, 2])]]
    out = run_steps(impl, "lm", steps, [1.0], amp=BF16)
    amps = [s[2] for s in out["seen"]]
    assert amps and all(a == BF16 for a in amps), \
        f"autocast dtypes seen by the model's forward passes: {amps}; expected torch.bfloat16 for each " \
        f"(torch.autocast(device_type, dtype=amp_dtype))"
    before, want, _ = expected_steps("lm", steps, [1.0], amp=BF16)
    for name, t in out["state"].items():
        expect_tensor(t, name, dtype=torch.float32)
    check_weights(out["state"], before, want, "train_step(amp_dtype=torch.bfloat16)", rtol=2e-2, atol=1e-4)


@pytest.mark.points(1)
def test_train_step_classifier_targets(impl):
    """A classifier's batch (inputs (B, F), labels (B,), logits (B, n_classes)) trains like a sequence model's."""
    steps = [[clf_batch(4, seed=330)]]
    out = run_steps(impl, "classifier", steps, [1.0])
    before, want, _ = expected_steps("classifier", steps, [1.0])
    check_weights(out["state"], before, want, "train_step on (B, n_classes) logits and (B,) labels")


@pytest.mark.points(2)
def test_train_step_adamw_run(impl):
    """Four AdamW steps of two padded micro-batches each, with a GradScaler, clipping and a rising schedule, equal the
    grader's run (everything together)."""
    steps = [[s2s_batch(2, 3, 5, seed=340 + 10 * i, lengths=[5, 3]), s2s_batch(2, 3, 5, seed=345 + 10 * i,
                                                                            lengths=[1, 2])] for i in range(4)]
    lrs = [0.01, 0.02, 0.03, 0.02]
    out = run_steps(impl, "seq2seq", steps, lrs, clip=0.5, optimizer="adamw", scaler={"init_scale": 2.0**8})
    before, want, _ = expected_steps("seq2seq", steps, lrs, clip=0.5, optimizer="adamw")
    check_weights(out["state"], before, want, "four AdamW train_steps", rtol=1e-3, atol=1e-6)


# --- evaluate -----------------------------------------------------------------------------------------------

def run_evaluate(impl, kind: str, batches: list[tuple], *, eval_mode: bool = False, amp: torch.dtype | None = None,
                 one_pass: bool = False, seed: int = 0) -> dict:
    """Call the implementation's evaluate on a fixture model and ``batches`` (a list, or with ``one_pass`` an
    iterator over it); return ``{"result", "seen", "training"}`` (``training``: the model's mode afterwards)."""
    objects = {"model": obj_spec(f"fixture:probe_{kind}", seed=seed, eval_mode=eval_mode)}
    if one_pass:
        objects["batches"] = obj_spec("fixture:one_pass", batches)
    res = impl.run_module(EVAL, (Ref("model"), Ref("batches") if one_pass else batches), {"amp_dtype": amp} if amp else {},
                          objects=objects, calls=[get(), attr("seen", target="model"), attr("training", target="model")])
    return dict(zip(("result", "seen", "training"), res.outputs))


def expected_eval(kind: str, batches: list[tuple], *, amp: torch.dtype | None = None, seed: int = 0) -> float:
    """Sum of every counted target's cross-entropy / their number, in the grader."""
    model = PROBES[kind](seed=seed).eval()
    total = 0.0
    with torch.no_grad():
        for b in batches:
            with torch.autocast("cpu", dtype=amp or BF16, enabled=amp is not None):
                logits = model(*b[:-1])[0]
            total += float(F.cross_entropy(logits.flatten(0, -2).float(), b[-1].flatten(), ignore_index=-100,
                                           reduction="sum"))
    return total / n_counted(batches)


def eval_value(out: dict, key: str) -> float:
    r = out["result"]
    assert isinstance(r, dict) and key in r, f"evaluate must return a dict with 'loss' and 'n_targets', got {r!r:.80}"
    v = r[key]
    assert isinstance(v, (int, float, torch.Tensor)) and not isinstance(v, bool), f"evaluate's {key!r} must be a number"
    return float(v)


EVAL_BATCHES = [s2s_batch(3, 4, 6, seed=400, lengths=[6, 6, 5]), s2s_batch(2, 4, 6, seed=403, lengths=[1, 2]),
                s2s_batch(1, 4, 6, seed=406, lengths=[3])]


@pytest.mark.points(2)
def test_evaluate_token_weighted_mean(impl):
    """evaluate returns the mean loss over every counted target of all batches (batches weigh by their number of
    targets, padding -100 counts nowhere) and that number; the batches come as a one-pass iterator."""
    out = run_evaluate(impl, "seq2seq", EVAL_BATCHES, one_pass=True)
    want = expected_eval("seq2seq", EVAL_BATCHES)
    got = eval_value(out, "loss")
    assert math.isclose(got, want, rel_tol=1e-5), \
        f"evaluate's loss is {got:.6g}, expected {want:.6g}: the mean over all 23 counted targets (batches of 17, " \
        f"3 and 3 targets), not the mean of the batches' means"
    assert eval_value(out, "n_targets") == n_counted(EVAL_BATCHES), \
        f"evaluate's n_targets is {eval_value(out, 'n_targets'):g}, expected {n_counted(EVAL_BATCHES)}"


@pytest.mark.points(1)
def test_evaluate_in_eval_mode(impl):
    """The forward passes of evaluate run in eval mode (dropout off), also when the model comes in training mode."""
    out = run_evaluate(impl, "lm", [lm_batch(2, 4, seed=410), lm_batch(2, 4, seed=412)])
    modes = [s[0] for s in out["seen"]]
    assert modes and not any(modes), f"evaluate ran the forward passes with training={modes}: call model.eval()"


@pytest.mark.points(1)
def test_evaluate_without_gradients(impl):
    """The forward passes of evaluate run without gradient tracking (torch.no_grad())."""
    out = run_evaluate(impl, "lm", [lm_batch(2, 4, seed=420), lm_batch(2, 4, seed=422)])
    grads = [s[1] for s in out["seen"]]
    assert grads and not any(grads), f"gradient tracking was {grads} in evaluate's forward passes: use torch.no_grad()"


@pytest.mark.points(1)
def test_evaluate_restores_the_mode(impl):
    """After evaluate the model is back in the mode it came in: training stays training, eval stays eval."""
    for start in (False, True):
        out = run_evaluate(impl, "lm", [lm_batch(2, 4, seed=430)], eval_mode=start)
        seen = out["seen"] if isinstance(out["seen"], list) else []
        assert seen, "evaluate never ran the model"  # restoring a mode it never changed earns nothing
        assert out["training"] is (not start), \
            f"a model that came in {'eval' if start else 'training'} mode left evaluate in " \
            f"{'training' if out['training'] else 'eval'} mode; restore the mode it had (model.train(was_training))"


@pytest.mark.points(1)
def test_evaluate_classifier_targets(impl):
    """evaluate works for a classifier's batches (logits (B, n_classes), labels (B,))."""
    batches = [clf_batch(5, seed=440), clf_batch(3, seed=442)]
    got = eval_value(run_evaluate(impl, "classifier", batches), "loss")
    want = expected_eval("classifier", batches)
    assert math.isclose(got, want, rel_tol=1e-5), f"evaluate's loss on a classifier is {got:.6g}, expected {want:.6g}"


@pytest.mark.points(1)
def test_evaluate_bf16_autocast(impl):
    """amp_dtype=torch.bfloat16 runs evaluate's forward passes under bf16 autocast."""
    batches = [lm_batch(3, 4, seed=450), lm_batch(2, 4, seed=452, lengths=[4, 1])]
    out = run_evaluate(impl, "lm", batches, amp=BF16)
    amps = [s[2] for s in out["seen"]]
    assert amps and all(a == BF16 for a in amps), f"autocast dtypes seen in evaluate: {amps}; expected torch.bfloat16"
    got, want = eval_value(out, "loss"), expected_eval("lm", batches, amp=BF16)
    assert math.isclose(got, want, rel_tol=2e-2), f"evaluate's loss under bf16 autocast is {got:.6g}, expected {want:.6g}"
