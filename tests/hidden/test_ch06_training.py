"""Hidden suite, chapter 6: the decoder block, AdamW parameter groups and the learning-rate schedule.

Interface: ``DecoderBlock(d_model, n_heads, d_ff, *, dropout=0.0, ffn="relu", norm="layernorm", norm_first=True,
bias=True, eps=1e-5)`` (sub-modules ``norm1``, ``self_attn``, ``norm2``, ``cross_attn``, ``norm3``, ``ffn``) with
``forward(x, memory, *, tgt_mask=None, memory_mask=None, is_causal=True)``; ``param_groups(model, weight_decay)``;
``warmup_cosine_lr(step, *, max_lr, min_lr, warmup_steps, total_steps)``. Masks are boolean, True = may attend.

Every expected value is computed here, in the grader: with ``nn.TransformerDecoderLayer`` holding the same
weights, the reference ``DecoderBlock`` (for options PyTorch's layer lacks), the schedule's formula written out
below, and for ``param_groups`` the reference ``EncoderBlock`` (a model from an earlier chapter) and a model with a
tied matrix (``tfmcourse.grading.fixtures.TiedLM``, built on both sides from the same seed).
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
from tfmcourse.grading.fixtures import TiedLM
from tfmcourse.grading.impl import Ref, call, obj_spec
from tfmcourse.grading.wire import StudentError
from tfmcourse.optim import param_groups as ref_param_groups

pytestmark = [pytest.mark.ch06]
BLOCK, GROUPS, LR = "DecoderBlock", "param_groups", "warmup_cosine_lr"
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


def torch_layer(*, norm_first: bool, activation: str = "relu", bias: bool = True, seed: int = 0):
    """``nn.TransformerDecoderLayer`` (float64, eval, no dropout) with random weights, and them in our names."""
    layer = nn.TransformerDecoderLayer(D, H, FF, dropout=0.0, activation=activation, batch_first=True,
                                       norm_first=norm_first, bias=bias).double().eval()
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
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), \
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
    """Self-attention is causal by default: a target token never sees later ones (is_causal=False: it sees all)."""
    layer, state = torch_layer(norm_first=True, seed=20)
    x, mem = rand(2, 6, D, seed=21), rand(2, 4, D, seed=22)
    x2 = x.clone()
    x2[:, 4:] = rand(2, 2, D, seed=23)  # change the last two target tokens
    res = block_run(impl, state, [call("forward", x, mem), call("forward", x2, mem),
                                  call("forward", x, mem, is_causal=False)], norm_first=True)
    assert_close(res.outputs[0], run_layer(layer, x, mem), "DecoderBlock output with the default is_causal")
    assert_close(res.outputs[1][:, :4], res.outputs[0][:, :4],
                 "outputs at positions 0..3 after changing tokens 4 and 5 (they must not see the future)")
    assert_close(res.outputs[2], run_layer(layer, x, mem, causal=False), "DecoderBlock output with is_causal=False")


@pytest.mark.points(1)
def test_decoder_block_target_padding_mask(impl):
    """tgt_mask (a (B, 1, 1, T) target padding mask) is applied to self-attention together with the causal mask."""
    layer, state = torch_layer(norm_first=False, seed=30)
    x, mem = rand(2, 5, D, seed=31), rand(2, 6, D, seed=32)
    tgt_keep = lengths_mask([5, 3], 5)
    out = block_run(impl, state, [call("forward", x, mem, tgt_mask=as_padding(tgt_keep))], norm_first=False).output
    assert_close(out, run_layer(layer, x, mem, tgt_keep=tgt_keep), "DecoderBlock output with a target padding mask")


@pytest.mark.points(2)
def test_decoder_block_memory_mask_hides_padding(impl):
    """memory_mask hides padded memory positions from cross-attention: changing them changes nothing."""
    layer, state = torch_layer(norm_first=True, seed=40)
    x, mem = rand(3, 4, D, seed=41), rand(3, 6, D, seed=42)
    mem_keep = lengths_mask([6, 2, 4], 6)
    mem2 = torch.where(mem_keep[..., None], mem, rand(3, 6, D, seed=43, scale=5.0))
    kw = {"memory_mask": as_padding(mem_keep)}
    res = block_run(impl, state, [call("forward", x, mem, **kw), call("forward", x, mem2, **kw)], norm_first=True)
    assert_close(res.outputs[0], run_layer(layer, x, mem, mem_keep=mem_keep), "DecoderBlock output with a memory mask")
    assert_close(res.outputs[1], res.outputs[0], "DecoderBlock output after changing only the masked memory positions")


@pytest.mark.points(1)
def test_decoder_block_gelu_without_bias(impl):
    """ffn="gelu", bias=False equals nn.TransformerDecoderLayer(activation="gelu", bias=False)."""
    layer, state = torch_layer(norm_first=True, activation="gelu", bias=False, seed=50)
    x, mem = rand(2, 5, D, seed=51), rand(2, 3, D, seed=52)
    out = block_run(impl, state, [call("forward", x, mem)], norm_first=True, ffn="gelu", bias=False).output
    assert_close(out, run_layer(layer, x, mem), "DecoderBlock(ffn='gelu', bias=False) output")


@pytest.mark.points(1)
def test_decoder_block_rmsnorm_swiglu(impl):
    """norm="rmsnorm", ffn="swiglu" (no PyTorch layer has these) equals the reference block with the same weights."""
    ref = RefDecoderBlock(D, H, FF, norm="rmsnorm", ffn="swiglu", norm_first=True, eps=1e-6).double().eval()
    randomise(ref, 60)
    state = {k: v.detach().clone() for k, v in ref.state_dict().items()}
    x, mem = rand(2, 5, D, seed=61), rand(2, 4, D, seed=62)
    mem_keep = lengths_mask([4, 2], 4)
    out = block_run(impl, state, [call("forward", x, mem, memory_mask=as_padding(mem_keep))],
                    norm="rmsnorm", ffn="swiglu", eps=1e-6).output
    with torch.no_grad():
        want = ref(x, mem, memory_mask=as_padding(mem_keep))
    assert_close(out, want, "DecoderBlock(norm='rmsnorm', ffn='swiglu', eps=1e-6) output")


@pytest.mark.points(2)
def test_decoder_block_gradients(impl):
    """Gradients w.r.t. x, memory and every parameter equal nn.TransformerDecoderLayer's (post-LN, masks on)."""
    layer, state = torch_layer(norm_first=False, seed=70)
    x, mem = rand(2, 4, D, seed=71), rand(2, 5, D, seed=72)
    mem_keep = lengths_mask([5, 3], 5)
    g = rand(2, 4, D, seed=73)
    res = impl.run_module(BLOCK, (D, H, FF), {"norm_first": False}, state,
                          [call("forward", x, mem, memory_mask=as_padding(mem_keep))], backward=g, dtype=F64)
    xl, ml = x.clone().requires_grad_(), mem.clone().requires_grad_()
    layer(xl, ml, tgt_mask=~torch.ones(4, 4, dtype=torch.bool).tril(), memory_key_padding_mask=~mem_keep).backward(g)
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
    """dropout=0.5 changes the output in training mode only; in eval mode the block is deterministic."""
    layer, state = torch_layer(norm_first=True, seed=80)
    x, mem = rand(2, 5, D, seed=81), rand(2, 4, D, seed=82)
    ev = block_run(impl, state, [call("forward", x, mem)], norm_first=True, dropout=0.5).output
    assert_close(ev, run_layer(layer, x, mem), "eval-mode output with dropout=0.5 (dropout must be off in eval mode)")
    tr = impl.run_module(BLOCK, (D, H, FF), {"dropout": 0.5}, state, [call("forward", x, mem)], dtype=F64,
                         train=True).output
    tr = expect_tensor(tr, "training-mode output", shape=(2, 5, D))
    assert (tr - ev).abs().max() > 1e-3, "dropout=0.5 in training mode left the output unchanged"


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


# --- everything together ------------------------------------------------------------------------------------

@pytest.mark.points(2)
def test_training_run_matches_reference(impl):
    """Training a DecoderBlock (AdamW, param_groups, warmup-cosine) gives the reference's learning rates and losses.

    The returned weights must also fit the data better than the initial ones (checked with the reference block)."""
    ref = RefDecoderBlock(D, H, FF)
    randomise(ref, 100)
    state = {k: v.detach().float().clone() for k, v in ref.state_dict().items()}
    x, mem, y = rand(4, 5, D, seed=101).float(), rand(4, 6, D, seed=102).float(), rand(4, 5, D, seed=103).float()
    sched = {"max_lr": 0.01, "min_lr": 0.001, "warmup_steps": 3, "total_steps": 10}
    try:
        out = impl.train(BLOCK, {"d_model": D, "n_heads": H, "d_ff": FF}, [x, mem], y, state_dict=state, steps=12,
                         weight_decay=0.1, use_param_groups=True, schedule=sched)
    except StudentError as e:
        raise AssertionError(f"training with your DecoderBlock, param_groups and warmup_cosine_lr raised "
                             f"{e.type_name}: {e.message}") from None
    want_lrs = [schedule(s, **sched) for s in range(12)]
    assert_close(torch.tensor(out["lrs"], dtype=F64), torch.tensor(want_lrs, dtype=F64), "learning rates used per step")
    # the same run with the reference, in the grader
    ref.float().load_state_dict(state)
    ref.eval()
    opt = torch.optim.AdamW(ref_param_groups(ref, 0.1), lr=0.0, weight_decay=0.1)
    losses = []
    for s in range(12):
        for gr in opt.param_groups:
            gr["lr"] = want_lrs[s]
        loss = F.mse_loss(ref(x, mem), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    got = torch.tensor(out["losses"], dtype=F64)
    assert_finite(got, "training losses")
    assert_close(got, torch.tensor(losses, dtype=F64), "training losses (12 AdamW steps, vs the reference run)",
                 rtol=2e-3, atol=1e-6)
    check = RefDecoderBlock(D, H, FF).eval()
    check.load_state_dict({k: v.float() for k, v in out["state_dict"].items()})
    with torch.no_grad():
        final = float(F.mse_loss(check(x, mem), y))
    assert final < 0.9 * losses[0], f"the returned weights give loss {final:.4g}; it started at {losses[0]:.4g}"
