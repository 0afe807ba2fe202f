"""Hidden suite, chapter 7: patches, the patch embedding and the Vision Transformer.

Interface: ``patchify(images, patch_size)`` (row-major patches, each flattened as (C, P, P)),
``PatchEmbedding(image_size, patch_size, in_chans, d_model, *, method="conv"|"reshape", bias=True)`` (its weight is
the ``nn.Conv2d`` ``proj``) and ``ViT(config)`` with ``config`` a ``ViTConfig`` (the reference's frozen dataclass,
built inside the implementation from its fields), ``forward_features``, ``forward_head`` and
``forward(images, targets=None) -> (logits, loss)``; parameter names as in the reference (``patch_embed``,
``cls_token``, ``pos_embed``, ``blocks``, ``norm``, ``head``).

Every expected value is computed here, in the grader: ``F.unfold`` for the patch order, ``nn.Conv2d`` for the
embedding, and the reference ``ViT`` holding the same weights for the model.
"""
from __future__ import annotations

from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tfmcourse.grading.checks import assert_close, assert_finite, expect_tensor
from tfmcourse.grading.impl import Ref, attr, call, obj_spec
from tfmcourse.grading.wire import MissingName, StudentError
from tfmcourse.vit import ViT as RefViT
from tfmcourse.vit import ViTConfig

pytestmark = [pytest.mark.ch07]
PATCHIFY, EMBED, VIT = "patchify", "PatchEmbedding", "ViT"
F64 = torch.float64


SMALL = dict(image_size=8, patch_size=4, in_chans=2, n_classes=3, d_model=16, n_layers=1, n_heads=2, d_ff=32)


# --- helpers (all run in the grader) ------------------------------------------------------------------------

def rand(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    """Random float64 values that are exactly representable in float32."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g) * scale).double()


def expected_patches(images: torch.Tensor, P: int) -> torch.Tensor:
    """``F.unfold`` with kernel = stride = P: columns are (C, P, P)-flattened patches in row-major grid order."""
    return F.unfold(images, kernel_size=P, stride=P).transpose(1, 2)


def conv_state(C: int, D: int, P: int, *, bias: bool = True, seed: int = 0) -> tuple[nn.Conv2d, dict]:
    conv = nn.Conv2d(C, D, P, stride=P, bias=bias).double()
    state = {"proj.weight": rand(D, C, P, P, seed=seed, scale=0.3)}
    if bias:
        state["proj.bias"] = rand(D, seed=seed + 1, scale=0.3)
    with torch.no_grad():
        conv.weight.copy_(state["proj.weight"])
        if bias:
            conv.bias.copy_(state["proj.bias"])
    return conv, state


def conv_embed(conv: nn.Conv2d, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return conv(images).flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, N, D)


def reference_vit(seed: int, **fields) -> tuple[RefViT, dict]:
    """The reference ViT (float64, eval) with random weights; CLS token and positions large enough to matter."""
    model = RefViT(ViTConfig(**fields)).double().eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g).double()
            if name.endswith("weight") and ("norm" in name) and p.dim() == 1:
                p.copy_(1.0 + 0.3 * noise)
            elif name in ("cls_token", "pos_embed"):
                p.copy_(0.5 * noise)
            else:
                p.copy_(0.3 * noise)
    return model, {k: v.detach().clone() for k, v in model.state_dict().items()}


def need_config(impl) -> None:
    """ViT takes a ``ViTConfig``, which cannot travel to the implementation as data: it is built there from its
    fields (``obj_spec``), so the notebook must have ``ViTConfig`` (``from tfmcourse.vit import ViTConfig``). The
    in-process reference namespace holds only interface names, so the reference's class is added there (to the
    reference only: a notebook graded in-process must import it, as in the sandbox)."""
    ns = getattr(impl, "ns", None)
    if isinstance(ns, dict) and "ViTConfig" not in ns and ns.get(VIT) is RefViT:
        ns["ViTConfig"] = ViTConfig


def run_vit(impl, fields: dict, state: dict | None, calls: list, **kw):
    """Build ``ViT(ViTConfig(**fields))`` in the implementation, load ``state`` and run ``calls``."""
    need_config(impl)
    cfg = asdict(ViTConfig(**fields))
    try:
        return impl.run_module(VIT, (Ref("config"),), {}, state, calls,
                               objects={"config": obj_spec("ViTConfig", **cfg)}, **kw)
    except MissingName as e:
        if "ViTConfig" in str(e):
            raise AssertionError("ViTConfig is not in the notebook: the grader builds ViT(ViTConfig(...)) with it "
                                 "(keep `from tfmcourse.vit import ViTConfig`)") from None
        raise


def images_for(fields: dict, B: int, seed: int) -> torch.Tensor:
    return rand(B, fields["in_chans"], fields["image_size"], fields["image_size"], seed=seed)


# --- patchify -----------------------------------------------------------------------------------------------

@pytest.mark.points(2)
def test_patchify_order(impl):
    """(B, C, H, W) -> (B, N, C*P*P): patches row by row over the grid, each flattened as (C, P, P)."""
    images = rand(2, 3, 4, 6, seed=1)
    out = expect_tensor(impl.call(PATCHIFY, images, 2), "patchify(images (2, 3, 4, 6), 2)", shape=(2, 6, 12))
    want = expected_patches(images, 2)
    assert_close(out[0, 1], want[0, 1], "patch 1 (first grid row, second column), flattened as (C, P, P)")
    assert_close(out, want, "patchify(images (2, 3, 4, 6), 2): every patch")


@pytest.mark.points(1)
def test_patchify_other_sizes(impl):
    """One channel, a single patch covering the image, and 1x1 patches (the pixels, row-major)."""
    images = rand(3, 1, 8, 8, seed=2)
    assert_close(impl.call(PATCHIFY, images, 4), expected_patches(images, 4), "patchify((3, 1, 8, 8), 4)")
    assert_close(impl.call(PATCHIFY, images, 8), expected_patches(images, 8), "patchify((3, 1, 8, 8), 8): one patch")
    rgb = rand(1, 3, 2, 3, seed=3)
    assert_close(impl.call(PATCHIFY, rgb, 1), expected_patches(rgb, 1), "patchify((1, 3, 2, 3), 1): pixels as patches")


# --- PatchEmbedding -----------------------------------------------------------------------------------------

@pytest.mark.points(1)
def test_patch_embedding_parameters(impl):
    """The one weight is an nn.Conv2d ``proj``: weight (d_model, C, P, P) and bias (d_model,), for both methods."""
    for method in ("conv", "reshape"):
        got = impl.param_shapes(EMBED, (8, 4, 3, 10), {"method": method})
        assert got == {"proj.weight": (10, 3, 4, 4), "proj.bias": (10,)}, \
            f"PatchEmbedding(8, 4, 3, 10, method={method!r}) parameters: expected proj = nn.Conv2d(3, 10, 4, " \
            f"stride=4), got {got}"
    got = impl.param_shapes(EMBED, (8, 4, 3, 10), {"bias": False})
    assert got == {"proj.weight": (10, 3, 4, 4)}, f"PatchEmbedding(bias=False) must have no bias, got {got}"


@pytest.mark.points(2)
@pytest.mark.parametrize("method", ["conv", "reshape"])
def test_patch_embedding_matches_conv2d(impl, method):
    """Both methods give nn.Conv2d(kernel=stride=P) flattened to (B, N, d_model), with the same proj weight."""
    conv, state = conv_state(3, 10, 4, seed=10)
    images = rand(2, 3, 8, 8, seed=11)
    res = impl.run_module(EMBED, (8, 4, 3, 10), {"method": method}, state, [call("forward", images)], dtype=F64)
    out = expect_tensor(res.output, f"PatchEmbedding(method={method!r}) output", shape=(2, 4, 10))
    assert_close(out, conv_embed(conv, images), f"PatchEmbedding(method={method!r}) output vs nn.Conv2d")


@pytest.mark.points(1)
def test_patch_embedding_without_bias(impl):
    """bias=False matches a bias-free nn.Conv2d, for both methods."""
    conv, state = conv_state(2, 6, 2, bias=False, seed=20)
    images = rand(3, 2, 6, 6, seed=21)
    for method in ("conv", "reshape"):
        out = impl.run_module(EMBED, (6, 2, 2, 6), {"method": method, "bias": False}, state,
                              [call("forward", images)], dtype=F64).output
        assert_close(out, conv_embed(conv, images), f"PatchEmbedding(method={method!r}, bias=False) output")


@pytest.mark.points(1)
def test_patch_embedding_rejects_wrong_image_size(impl):
    """Images of another size than image_size raise ValueError (for both methods), instead of a wrong patch count."""
    _, state = conv_state(3, 10, 4, seed=30)
    for method in ("conv", "reshape"):
        try:
            impl.run_module(EMBED, (8, 4, 3, 10), {"method": method}, state,
                            [call("forward", rand(1, 3, 12, 12, seed=31))], dtype=F64)
        except StudentError as e:
            assert e.type_name == "ValueError", \
                f"method={method!r}: 12x12 images into PatchEmbedding(image_size=8) must raise ValueError, " \
                f"got {e.type_name}: {e.message}"
            continue
        raise AssertionError(f"method={method!r}: 12x12 images into PatchEmbedding(image_size=8) must raise "
                             f"ValueError, but an output came back")


@pytest.mark.points(1)
def test_patch_embedding_gradients(impl):
    """The reshape method's gradients w.r.t. the images and proj equal nn.Conv2d's."""
    conv, state = conv_state(3, 10, 4, seed=40)
    images = rand(2, 3, 8, 8, seed=41)
    g = rand(2, 4, 10, seed=42)
    res = impl.run_module(EMBED, (8, 4, 3, 10), {"method": "reshape"}, state, [call("forward", images)], backward=g,
                          dtype=F64)
    leaf = images.clone().requires_grad_()
    conv(leaf).flatten(2).transpose(1, 2).backward(g)
    assert res.input_grads and res.input_grads[0] is not None, "no gradient reached the images"
    assert_close(res.input_grads[0], leaf.grad, "gradient w.r.t. the images")
    for name, p in (("proj.weight", conv.weight), ("proj.bias", conv.bias)):
        assert res.param_grads.get(name) is not None, f"no gradient reached {name}"
        assert_close(res.param_grads[name], p.grad, f"gradient w.r.t. {name}")


# --- ViT ------------------------------------------------------------------------------------------------------

@pytest.mark.points(2)
@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_vit_parameter_names(impl, pool):
    """ViT's parameters are named and shaped like the reference (patch_embed, cls_token, pos_embed, blocks, norm, head).

    cls_token exists with CLS pooling only; pos_embed has one row per token (CLS included)."""
    fields = {**SMALL, "pool": pool}
    _, state = reference_vit(0, **fields)
    res = run_vit(impl, fields, state, [attr("training")], return_state=True)
    assert sorted(res.state_dict) == sorted(state), "ViT state-dict keys differ from the reference"


@pytest.mark.points(2)
def test_vit_forward_features_cls(impl):
    """forward_features gives (B, 1 + N, d_model) equal to the reference with the same weights.

    Patch embedding, the CLS token in front, positions added, the encoder blocks, the final norm."""
    ref, state = reference_vit(50, **SMALL, pool="cls")
    images = images_for(SMALL, 3, 51)
    out = run_vit(impl, {**SMALL, "pool": "cls"}, state, [call("forward_features", images)], dtype=F64).output
    out = expect_tensor(out, "forward_features output", shape=(3, 5, 16))
    with torch.no_grad():
        want = ref.forward_features(images)
    assert_close(out[:, 0], want[:, 0], "forward_features: the CLS token's final state (token 0)")
    assert_close(out, want, "forward_features output (CLS pooling)")


@pytest.mark.points(1)
def test_vit_forward_features_mean_and_options(impl):
    """With pool="mean" there is no CLS token: (B, N, d_model); norm, ffn, d_ff and n_layers come from the config."""
    fields = {**SMALL, "pool": "mean", "norm": "rmsnorm", "ffn": "swiglu", "d_ff": 24, "n_layers": 2}
    ref, state = reference_vit(60, **fields)
    images = images_for(fields, 2, 61)
    out = run_vit(impl, fields, state, [call("forward_features", images)], dtype=F64).output
    out = expect_tensor(out, "forward_features output (mean pooling)", shape=(2, 4, 16))
    with torch.no_grad():
        want = ref.forward_features(images)
    assert_close(out, want, "forward_features output (pool='mean', rmsnorm, swiglu, 2 layers)")


@pytest.mark.points(2)
@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_vit_forward_head_pooling(impl, pool):
    """forward_head pools the tokens (CLS: token 0; mean: the average of all tokens, there is no CLS) and classifies."""
    fields = {**SMALL, "pool": pool}
    ref, state = reference_vit(70, **fields)
    n_tokens = 5 if pool == "cls" else 4
    tokens = rand(3, n_tokens, 16, seed=71)
    out = run_vit(impl, fields, state, [call("forward_head", tokens)], dtype=F64).output
    out = expect_tensor(out, f"forward_head output ({pool} pooling)", shape=(3, 3))
    pooled = tokens[:, 0] if pool == "cls" else tokens.mean(dim=1)
    assert_close(out, F.linear(pooled, state["head.weight"], state["head.bias"]),
                 f"forward_head output ({pool} pooling: head({'x[:, 0]' if pool == 'cls' else 'x.mean(dim=1)'}))")


@pytest.mark.points(2)
def test_vit_forward_returns_logits_and_loss(impl):
    """forward(images, targets) returns (logits (B, n_classes), cross-entropy loss); without targets, (logits, None)."""
    ref, state = reference_vit(80, **SMALL)
    images, targets = images_for(SMALL, 4, 81), torch.tensor([0, 2, 1, 2])
    res = run_vit(impl, SMALL, state, [call("forward", images, targets), call("forward", images)], dtype=F64)
    with_t, without = res.outputs
    with torch.no_grad():
        want_logits, want_loss = ref(images, targets)
    assert isinstance(with_t, (tuple, list)) and len(with_t) == 2, \
        f"forward(images, targets) must return (logits, loss), got {type(with_t).__name__}"
    assert_close(expect_tensor(with_t[0], "logits", shape=(4, 3)), want_logits, "logits")
    loss = expect_tensor(with_t[1], "loss", shape=())
    assert_close(loss.double(), want_loss.double(), "cross-entropy loss", check_dtype=False, rtol=1e-5, atol=1e-7)
    assert isinstance(without, (tuple, list)) and len(without) == 2 and without[1] is None, \
        "forward(images) without targets must return (logits, None)"
    assert_close(without[0], want_logits, "logits without targets")


@pytest.mark.points(1)
def test_vit_reshape_patch_method(impl):
    """patch_method="reshape" in the config gives the same logits as the reference (same weights)."""
    fields = {**SMALL, "patch_method": "reshape"}
    ref, state = reference_vit(90, **fields)
    images = images_for(fields, 2, 91)
    out = run_vit(impl, fields, state, [call("forward", images)], dtype=F64).output
    with torch.no_grad():
        want = ref(images)[0]
    assert_close(out[0], want, "logits with patch_method='reshape'")


@pytest.mark.points(2)
def test_vit_gradients_reach_every_parameter(impl):
    """The loss's gradient reaches every parameter (CLS token and positions included) and equals the reference's."""
    ref, state = reference_vit(100, **SMALL)
    images, targets = images_for(SMALL, 4, 101), torch.tensor([1, 0, 2, 1])
    res = run_vit(impl, SMALL, state, [call("forward", images, targets)], dtype=F64, backward=torch.tensor(1.0),
                  grad_index=1)
    _, loss = ref(images, targets)
    loss.backward()
    missing = [n for n, _ in ref.named_parameters()
               if res.param_grads.get(n) is None or not bool(res.param_grads[n].abs().sum() > 0)]
    assert not missing, f"no gradient reaches {', '.join(missing[:6])}"
    for name, p in ref.named_parameters():
        assert_close(res.param_grads[name], p.grad, f"gradient w.r.t. {name}")


def _digits(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A tiny learnable task: 8x8 two-channel images, class = which quadrant holds a bright square."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=g)
    images = torch.randn(n, 2, 8, 8, generator=g) * 0.3
    for i, c in enumerate(labels.tolist()):
        r, col = [(0, 0), (0, 4), (4, 0)][c]
        images[i, :, r:r + 4, col:col + 4] += 1.5
    return images, labels


@pytest.mark.points(2)
def test_vit_trains(impl):
    """Trained for 20 Adam steps on a tiny task, the loss halves and the weights classify the training images.

    The gradients are your ViT's; the grader runs the optimizer (a ViTConfig cannot be passed to impl.train) and
    evaluates the final weights in the reference ViT (90 % accuracy needed)."""
    torch.manual_seed(0)
    ref = RefViT(ViTConfig(**SMALL))
    params = {k: v.detach().clone() for k, v in ref.state_dict().items()}
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    opt = torch.optim.Adam(list(leaves.values()), lr=1e-2)
    images, labels = _digits(24, 110)
    losses = []
    for _ in range(20):
        state = {k: v.detach() for k, v in leaves.items()}
        res = run_vit(impl, SMALL, state, [call("forward", images, labels)], backward=torch.tensor(1.0), grad_index=1)
        out = res.output
        assert isinstance(out, (tuple, list)) and len(out) == 2, "forward(images, targets) must return (logits, loss)"
        losses.append(float(out[1]))
        for k, p in leaves.items():
            g = res.param_grads.get(k)
            assert g is not None, f"no gradient reached {k}"
            p.grad = g.to(p.dtype)
        opt.step()
    assert_finite(torch.tensor(losses), "training losses")
    assert losses[-1] < 0.5 * losses[0], f"the loss went from {losses[0]:.3f} to {losses[-1]:.3f} in 20 Adam steps"
    check = RefViT(ViTConfig(**SMALL)).eval()
    check.load_state_dict({k: v.detach() for k, v in leaves.items()})
    with torch.no_grad():
        acc = float((check(images)[0].argmax(-1) == labels).float().mean())
    assert acc >= 0.9, f"the trained weights classify {acc:.0%} of the training images in the reference ViT (need 90 %)"
