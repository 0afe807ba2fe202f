"""Hidden suite, chapter 7: patches, the patch embedding and the Vision Transformer.

Interface: ``patchify(images, patch_size)`` (row-major patches, each flattened as (C, P, P)),
``PatchEmbedding(image_size, patch_size, in_chans, d_model, *, method="conv"|"reshape", bias=True)`` (its weight is
the ``nn.Conv2d`` ``proj``) and ``ViT(config)`` with ``config`` a ``ViTConfig`` (the reference's frozen dataclass,
built inside the implementation from its fields), ``forward_features``, ``forward_head`` and
``forward(images, targets=None) -> (logits, loss)``; parameter names as in the reference (``patch_embed``,
``cls_token``, ``pos_embed``, ``blocks``, ``norm``, ``head``).

Every expected value is computed here, in the grader: ``F.unfold`` for the patch order, ``nn.Conv2d`` for the
embedding, and the reference ``ViT`` holding the same weights for the model. One mistake should cost one idea, so
tests of a later piece take the earlier pieces from the implementation itself: the reshape method is also accepted
when it agrees with the student's own ``patchify``, the ViT token tests start from the student's own
``patch_embed`` output, ``forward`` is compared with the student's own ``forward_head(forward_features(...))``, the
dropout tests compare the student's model in training mode with itself in eval mode, and the reference's weights are
loaded where names and shapes match (a misnamed parameter costs the parameter tests and those that need it).
"""
from __future__ import annotations

from dataclasses import asdict

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tfmcourse.grading.checks import assert_close, assert_finite, default_tol, expect_tensor
from tfmcourse.grading.impl import Ref, attr, call, obj_spec
from tfmcourse.grading.wire import InterfaceError, MissingName, StudentError
from tfmcourse.vit import ViT as RefViT
from tfmcourse.vit import ViTConfig

pytestmark = [pytest.mark.ch07]
PATCHIFY, EMBED, VIT = "patchify", "PatchEmbedding", "ViT"
F64 = torch.float64

REQUIREMENTS: list[tuple[str, list[str]]] = [
    ("patchify: (B, C, H, W) -> (B, N, C*P*P), patches row by row over the grid (also for H != W)",
     ["test_patchify_order", "test_patchify_other_sizes"]),
    ("patchify: each patch flattened in (C, P, P) order, the order of F.unfold and of a Conv2d weight",
     ["test_patchify_order", "test_patchify_other_sizes"]),
    ("patchify: ValueError if P does not divide H, or does not divide W", ["test_patchify_rejects_indivisible_size"]),
    ("patchify: differentiable (the gradient goes back to the pixels)", ["test_patchify_gradient"]),
    ("PatchEmbedding: proj = nn.Conv2d(in_chans, d_model, kernel_size=P, stride=P, bias=bias), for both methods",
     ["test_patch_embedding_parameters"]),
    ("PatchEmbedding: keeps n_patches = (image_size // P) ** 2, image_size, patch_size, in_chans and method",
     ["test_patch_embedding_attributes"]),
    ("PatchEmbedding method='conv': the strided convolution flattened to (B, N, d_model)",
     ["test_patch_embedding_matches_conv2d"]),
    ("PatchEmbedding method='reshape': patchify + F.linear with proj.weight flattened as (C, P, P), plus the bias",
     ["test_patch_embedding_matches_conv2d", "test_patch_embedding_gradients"]),
    ("PatchEmbedding bias=False: no bias parameter and none added, for both methods",
     ["test_patch_embedding_parameters", "test_patch_embedding_without_bias"]),
    ("PatchEmbedding: ValueError for a method other than 'conv'/'reshape' and for an image_size P does not divide",
     ["test_patch_embedding_rejects_bad_arguments"]),
    (("PatchEmbedding.forward: ValueError for images whose shape is not (B, in_chans, image_size, image_size), "
      "on every axis"), ["test_patch_embedding_rejects_wrong_image_shape"]),
    (("ViT: parameters patch_embed, cls_token (1, 1, D) with pool='cls' only, pos_embed (1, n_tokens, D), "
      "blocks, norm, head = nn.Linear(D, n_classes); FFN width config.hidden (4 * d_model unless d_ff is set)"),
     ["test_vit_parameter_names"]),
    ("ViT: in_chans, patch_size, n_classes, n_layers, d_ff, norm and ffn of the config reach the sub-modules",
     ["test_vit_parameters_follow_config", "test_vit_forward_features_mean_and_options"]),
    ("ViT: patch_embed uses the config's patch_method", ["test_vit_patch_method_reaches_patch_embed"]),
    (("ViT init: self.apply(self._init_weights) (linear weights std 0.02, biases 0), pos_embed = randn * 0.02, "
      "cls_token normal with std 1e-6"), ["test_vit_init"]),
    (("forward_features: CLS token concatenated in front, positions added after it (CLS included), the pre-LN "
      "blocks with eps 1e-6 and no mask, the final norm"), ["test_vit_forward_features_cls"]),
    (("forward_features with pool='mean': no CLS token, (B, N, D); n_heads, n_layers, norm, ffn, d_ff from the "
      "config"), ["test_vit_forward_features_mean_and_options"]),
    (("dropout (train mode) on the embedded tokens after the positions are added, before the blocks: about p of "
      "the entries zeroed, the rest scaled by 1/(1-p)"), ["test_vit_dropout_on_embedded_tokens"]),
    ("dropout reaches every encoder block", ["test_vit_dropout_reaches_blocks"]),
    ("no dropout in eval mode, nor with dropout=0.0 in train mode", ["test_vit_no_dropout_in_eval_or_at_zero"]),
    ("forward_head: pool='cls' classifies x[:, 0]; pool='mean' classifies x.mean(dim=1); head has a bias",
     ["test_vit_forward_head_pooling"]),
    (("forward(images, targets) returns (forward_head(forward_features(images)), cross-entropy); without "
      "targets (logits, None)"), ["test_vit_forward_returns_logits_and_loss"]),
    ("the loss's gradient reaches every parameter, the CLS token and the positions included (they are nn.Parameters)",
     ["test_vit_gradients_reach_every_parameter"]),
]

# Tiny ViT sizes. in_chans and d_ff are the defaults' values (3 and 4 * d_model), so that only the tests about them
# depend on how they are read.
SMALL = dict(image_size=8, patch_size=4, in_chans=3, n_classes=3, d_model=16, n_layers=1, n_heads=2, d_ff=64)


# --- helpers (all run in the grader) ------------------------------------------------------------------------

def rand(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    """Random float64 values that are exactly representable in float32."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g) * scale).double()


def close(actual, expected: torch.Tensor) -> bool:
    """``assert_close`` as a yes/no answer (same shape and values within the dtype's tolerance)."""
    if not isinstance(actual, torch.Tensor) or actual.shape != expected.shape:
        return False
    rtol, atol = default_tol(expected.dtype)
    return bool(torch.allclose(actual.double(), expected.double(), rtol=rtol, atol=atol))


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


def run_embed(impl, init_args: tuple, init_kwargs: dict, state: dict, calls: list, **kw):
    """``impl.run_module`` for PatchEmbedding, with ``proj.weight`` in the layout the implementation holds:
    (D, C, P, P), or (D, C*P*P) for an nn.Linear ``proj`` (the layout is charged to test_patch_embedding_parameters)."""
    w = state["proj.weight"]
    try:
        if impl.param_shapes(EMBED, init_args, init_kwargs).get("proj.weight") == (w.size(0), w[0].numel()):
            state = {**state, "proj.weight": w.flatten(1)}
    except StudentError:
        pass  # building it fails: run_module says so
    return impl.run_module(EMBED, init_args, init_kwargs, state, calls, **kw)


def conv_embed(conv: nn.Conv2d, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return conv(images).flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, N, D)


def expect_rejected(fn, what: str) -> None:
    """``fn()`` must raise ValueError in the implementation."""
    try:
        fn()
    except StudentError as e:
        assert e.type_name == "ValueError", f"{what} must raise ValueError, got {e.type_name}: {e.message}"
        return
    raise AssertionError(f"{what} must raise ValueError, but it was accepted")


def reshape_embedding_ok(impl, out, conv_out: torch.Tensor, images: torch.Tensor, P: int, state: dict) -> bool:
    """The reshape method's output is right if it equals the convolution's, or if it is exactly what the correct
    recipe gives on the student's own ``patchify`` (a wrong patch order is charged to the patchify tests only)."""
    if close(out, conv_out):
        return True
    try:
        patches = impl.call(PATCHIFY, images, P)
    except (StudentError, MissingName, InterfaceError):  # no patchify to agree with
        return False
    w = state["proj.weight"]
    if not isinstance(patches, torch.Tensor) or patches.shape != (*conv_out.shape[:2], w[0].numel()):
        return False
    return close(out, F.linear(patches.to(w.dtype), w.flatten(1), state.get("proj.bias")))


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


def reference_features(ref: RefViT, tokens: torch.Tensor) -> torch.Tensor:
    """What ``forward_features`` computes after the patch embedding: [CLS;] tokens + positions, blocks, final norm."""
    with torch.no_grad():
        x = tokens
        if ref.cls_token is not None:
            x = torch.cat([ref.cls_token.expand(x.size(0), -1, -1), x], dim=1)  # (B, 1 + N, D)
        x = x + ref.pos_embed
        for block in ref.blocks:
            x = block(x)
        return ref.norm(x)


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


def own_state(impl, fields: dict, **kw) -> dict:
    """The implementation's own freshly initialised state dict (float64 unless ``dtype`` is given)."""
    kw.setdefault("dtype", F64)
    return run_vit(impl, fields, None, [attr("training")], return_state=True, **kw).state_dict


def matching_state(impl, fields: dict, ref_state: dict) -> tuple[dict, str]:
    """The state to load into the implementation: its own, with the reference's values wherever the name and shape
    agree, and a note naming the differences. A misnamed or missing parameter (charged by test_vit_parameter_names)
    then costs only the tests that need that parameter."""
    own = own_state(impl, fields)
    state = {k: (ref_state[k] if k in ref_state and ref_state[k].shape == v.shape else v) for k, v in own.items()}
    differ = sorted(k for k in set(own) | set(ref_state) if k not in own or k not in ref_state
                    or own[k].shape != ref_state[k].shape)
    note = f" (your parameters differ from the reference's at {differ[:5]}; they keep their own values)" * bool(differ)
    return state, note


def shapes_of(state: dict) -> dict:
    return {k: tuple(v.shape) for k, v in state.items()}


def compare_shapes(got: dict, want: dict, what: str) -> None:
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    wrong = [f"{k}: {got[k]} (expected {want[k]})" for k in sorted(set(got) & set(want)) if got[k] != want[k]]
    assert not (missing or extra or wrong), \
        f"{what}: " + "; ".join(part for part in (f"missing {missing[:6]}" if missing else "",
                                                   f"unexpected {extra[:6]}" if extra else "",
                                                   f"wrong shapes {wrong[:4]}" if wrong else "") if part)


def images_for(fields: dict, B: int, seed: int) -> torch.Tensor:
    return rand(B, fields["in_chans"], fields["image_size"], fields["image_size"], seed=seed)


def features(impl, fields: dict, state: dict, images: torch.Tensor, *, train: bool = False) -> torch.Tensor:
    out = run_vit(impl, fields, state, [call("forward_features", images)], dtype=F64, train=train).output
    return expect_tensor(out, f"forward_features output ({'train' if train else 'eval'} mode)")


# --- patchify -----------------------------------------------------------------------------------------------

@pytest.mark.points(2)
def test_patchify_order(impl):
    """(B, C, H, W) -> (B, N, C*P*P): patches row by row over the grid, each flattened as (C, P, P)."""
    images = rand(2, 3, 4, 6, seed=1)
    out = expect_tensor(impl.call(PATCHIFY, images, 2), "patchify(images (2, 3, 4, 6), 2)", shape=(2, 6, 12))
    want = expected_patches(images, 2)
    assert_close(out[0, 1], want[0, 1], "patch 1 (first grid row, second column), flattened as (C, P, P)")
    assert_close(out, want, "patchify(images (2, 3, 4, 6), 2): every patch (a 2 x 3 grid, row by row)")


@pytest.mark.points(1)
def test_patchify_other_sizes(impl):
    """One channel, a single patch covering the image, a batch of one, and 1x1 patches (the pixels, row-major)."""
    images = rand(3, 1, 8, 8, seed=2)
    assert_close(impl.call(PATCHIFY, images, 4), expected_patches(images, 4), "patchify((3, 1, 8, 8), 4)")
    assert_close(impl.call(PATCHIFY, images, 8), expected_patches(images, 8), "patchify((3, 1, 8, 8), 8): one patch")
    rgb = rand(1, 3, 2, 3, seed=3)
    assert_close(impl.call(PATCHIFY, rgb, 1), expected_patches(rgb, 1), "patchify((1, 3, 2, 3), 1): pixels as patches")


@pytest.mark.points(1)
def test_patchify_rejects_indivisible_size(impl):
    """ValueError when P does not divide the height, or does not divide the width; a divisible image is accepted."""
    ok = impl.call(PATCHIFY, rand(1, 2, 8, 12, seed=4), 4)
    expect_tensor(ok, "patchify((1, 2, 8, 12), 4) (a valid call)", shape=(1, 6, 32))
    expect_rejected(lambda: impl.call(PATCHIFY, rand(1, 2, 6, 8, seed=5), 4), "patchify of a 6x8 image with P=4 "
                    "(the height 6 is not divisible by 4)")
    expect_rejected(lambda: impl.call(PATCHIFY, rand(1, 2, 8, 6, seed=6), 4), "patchify of an 8x6 image with P=4 "
                    "(the width 6 is not divisible by 4)")


@pytest.mark.points(1)
def test_patchify_gradient(impl):
    """patchify is differentiable: the images' gradient is the output gradient moved back to the pixels."""
    images = rand(2, 3, 4, 6, seed=7)
    g = rand(2, 6, 12, seed=8)
    res = impl.grad(PATCHIFY, [images, 2], grad_out=g)
    grad = res.grads[0] if res.grads else None
    assert grad is not None, "no gradient reached the images (does patchify detach, or leave torch?)"
    grad = expect_tensor(grad, "gradient w.r.t. the images", shape=(2, 3, 4, 6))
    # every pixel appears once in the patches, so its gradient is one entry of g (whatever the order)
    assert torch.equal(grad.double().flatten().sort().values, g.flatten().sort().values), \
        "the gradient w.r.t. the images is not a rearrangement of the output gradient: every pixel must appear " \
        "exactly once among the patches"


# --- PatchEmbedding -----------------------------------------------------------------------------------------

@pytest.mark.points(1)
def test_patch_embedding_parameters(impl):
    """The one weight is an nn.Conv2d ``proj`` (d_model, C, P, P) with bias (d_model,); bias=False leaves no bias."""
    for method in ("conv", "reshape"):
        got = impl.param_shapes(EMBED, (8, 4, 3, 10), {"method": method})
        assert got == {"proj.weight": (10, 3, 4, 4), "proj.bias": (10,)}, \
            f"PatchEmbedding(8, 4, 3, 10, method={method!r}) parameters: expected proj = nn.Conv2d(3, 10, 4, " \
            f"stride=4), got {got}"
        got = impl.param_shapes(EMBED, (8, 4, 3, 10), {"method": method, "bias": False})
        assert got == {"proj.weight": (10, 3, 4, 4)}, \
            f"PatchEmbedding(method={method!r}, bias=False) must have no bias, got {got}"


@pytest.mark.points(1)
def test_patch_embedding_attributes(impl):
    """PatchEmbedding keeps n_patches = (image_size // patch_size) ** 2, image_size, patch_size, in_chans, method."""
    res = impl.run_module(EMBED, (12, 4, 3, 10), {"method": "reshape"}, None,
                          [attr("n_patches"), attr("image_size"), attr("patch_size"), attr("in_chans"), attr("method")])
    got = dict(zip(("n_patches", "image_size", "patch_size", "in_chans", "method"), res.outputs))
    want = {"n_patches": 9, "image_size": 12, "patch_size": 4, "in_chans": 3, "method": "reshape"}
    assert got == want, f"PatchEmbedding(12, 4, 3, 10, method='reshape') attributes: expected {want}, got {got}"


@pytest.mark.points(2)
@pytest.mark.parametrize("method", ["conv", "reshape"])
def test_patch_embedding_matches_conv2d(impl, method):
    """Both methods give nn.Conv2d(kernel=stride=P) flattened to (B, N, d_model), with the same proj weight."""
    conv, state = conv_state(3, 10, 4, seed=10)
    images = rand(2, 3, 8, 8, seed=11)
    res = run_embed(impl, (8, 4, 3, 10), {"method": method}, state, [call("forward", images)], dtype=F64)
    out = expect_tensor(res.output, f"PatchEmbedding(method={method!r}) output", shape=(2, 4, 10))
    want = conv_embed(conv, images)
    if method == "reshape" and reshape_embedding_ok(impl, out, want, images, 4, state):
        return
    assert_close(out, want, f"PatchEmbedding(method={method!r}) output vs nn.Conv2d")


@pytest.mark.points(1)
def test_patch_embedding_without_bias(impl):
    """bias=False matches a bias-free nn.Conv2d, for both methods."""
    conv, state = conv_state(2, 6, 2, bias=False, seed=20)
    images = rand(3, 2, 6, 6, seed=21)
    for method in ("conv", "reshape"):
        out = run_embed(impl, (6, 2, 2, 6), {"method": method, "bias": False}, state,
                        [call("forward", images)], dtype=F64).output
        want = conv_embed(conv, images)
        if method == "reshape" and reshape_embedding_ok(impl, out, want, images, 2, state):
            continue
        assert_close(out, want, f"PatchEmbedding(method={method!r}, bias=False) output")


@pytest.mark.points(1)
def test_patch_embedding_rejects_bad_arguments(impl):
    """ValueError for an unknown method or an image_size that patch_size does not divide; valid arguments build."""
    for args, kwargs in (((8, 4, 3, 10), {"method": "conv"}), ((12, 4, 3, 10), {"method": "reshape"})):
        try:
            impl.param_shapes(EMBED, args, kwargs)
        except StudentError as e:
            raise AssertionError(f"PatchEmbedding{args} with {kwargs} is valid but raised {e.type_name}: "
                                 f"{e.message}") from None
    expect_rejected(lambda: impl.param_shapes(EMBED, (8, 4, 3, 10), {"method": "linear"}),
                    "PatchEmbedding(8, 4, 3, 10, method='linear')")
    expect_rejected(lambda: impl.param_shapes(EMBED, (10, 4, 3, 10), {}),
                    "PatchEmbedding(10, 4, 3, 10) (image_size 10 is not divisible by patch_size 4)")


@pytest.mark.points(1)
def test_patch_embedding_rejects_wrong_image_shape(impl):
    """forward raises ValueError for a wrong height, width or channel count (both methods); right-shaped images pass."""
    _, state = conv_state(3, 10, 4, seed=30)
    for method in ("conv", "reshape"):
        def forward(images, method=method):
            return run_embed(impl, (8, 4, 3, 10), {"method": method}, state, [call("forward", images)],
                             dtype=F64).output
        try:
            ok = forward(rand(2, 3, 8, 8, seed=31))
        except StudentError as e:
            raise AssertionError(f"method={method!r}: (2, 3, 8, 8) images into PatchEmbedding(8, 4, 3, 10) are "
                                 f"valid but raised {e.type_name}: {e.message}") from None
        expect_tensor(ok, f"method={method!r}: output for valid (2, 3, 8, 8) images", shape=(2, 4, 10))
        for shape, why in (((1, 3, 12, 12), "12x12 images"), ((1, 3, 12, 8), "12x8 images (wrong height)"),
                           ((1, 3, 8, 12), "8x12 images (wrong width)"), ((1, 1, 8, 8), "1-channel images")):
            expect_rejected(lambda shape=shape: forward(rand(*shape, seed=32)),
                            f"method={method!r}: {why} into PatchEmbedding(image_size=8, in_chans=3)")


@pytest.mark.points(1)
def test_patch_embedding_gradients(impl):
    """The reshape method is differentiable: gradients reach the images and proj, equal to nn.Conv2d's.

    (When the output itself is wrong, only that the gradients arrive is checked: the output has its own test.)"""
    conv, state = conv_state(3, 10, 4, seed=40)
    images = rand(2, 3, 8, 8, seed=41)
    g = rand(2, 4, 10, seed=42)
    res = run_embed(impl, (8, 4, 3, 10), {"method": "reshape"}, state, [call("forward", images)], backward=g,
                    dtype=F64)
    leaf = images.clone().requires_grad_()
    out = conv(leaf).flatten(2).transpose(1, 2)
    out.backward(g)
    assert res.input_grads and res.input_grads[0] is not None, "no gradient reached the images"
    for name in ("proj.weight", "proj.bias"):
        assert res.param_grads.get(name) is not None, f"no gradient reached {name}"
    if not close(res.output, out.detach()):
        return  # a wrong output is charged to test_patch_embedding_matches_conv2d, not again here
    assert_close(res.input_grads[0], leaf.grad, "gradient w.r.t. the images")
    for name, p in (("proj.weight", conv.weight), ("proj.bias", conv.bias)):
        got = res.param_grads[name]
        assert_close(got, p.grad.reshape(got.shape), f"gradient w.r.t. {name}")


# --- ViT: parameters and initialisation -----------------------------------------------------------------------

@pytest.mark.points(1)
@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_vit_parameter_names(impl, pool):
    """ViT's parameters are named and shaped as stated (patch_embed, cls_token, pos_embed, blocks, norm, head).

    cls_token exists with CLS pooling only; pos_embed has one row per token (CLS included); d_ff=None gives FFNs of
    width 4 * d_model."""
    fields = {**SMALL, "pool": pool, "d_ff": None}
    want = shapes_of(RefViT(ViTConfig(**fields)).state_dict())
    compare_shapes(shapes_of(own_state(impl, fields)), want, f"ViT parameters (pool={pool!r}, d_ff=None)")


@pytest.mark.points(1)
def test_vit_parameters_follow_config(impl):
    """in_chans, patch_size, n_classes, n_layers, d_ff, norm ("rmsnorm") and ffn ("swiglu") reach the sub-modules."""
    fields = dict(image_size=8, patch_size=2, in_chans=1, n_classes=5, d_model=16, n_layers=3, n_heads=2, d_ff=24,
                  norm="rmsnorm", ffn="swiglu")
    # the parameters these options decide; the rest (cls_token, head.bias, ...) is test_vit_parameter_names's
    def decided(state: dict) -> dict:
        return {k: v for k, v in shapes_of(state).items()
                if k.startswith(("blocks.", "norm.")) or k in ("patch_embed.proj.weight", "pos_embed", "head.weight")}
    compare_shapes(decided(own_state(impl, fields)), decided(RefViT(ViTConfig(**fields)).state_dict()),
                   "ViT parameters for ViTConfig(patch_size=2, in_chans=1, n_classes=5, n_layers=3, d_ff=24, "
                   "norm='rmsnorm', ffn='swiglu')")


@pytest.mark.points(1)
def test_vit_init(impl):
    """Initialisation: linear weights std 0.02 and biases 0, pos_embed std 0.02, cls_token std 1e-6.

    That is self.apply(self._init_weights), torch.randn(...) * 0.02 and nn.init.normal_(std=1e-6); checked
    statistically, so any random numbers do."""
    fields = dict(image_size=8, patch_size=2, in_chans=1, n_classes=10, d_model=64, n_layers=1, n_heads=4, d_ff=256)
    state = own_state(impl, fields, dtype=None)
    for name in ("pos_embed", "cls_token", "head.weight"):
        assert name in state, f"the ViT has no {name}"
    pos, cls = state["pos_embed"].double(), state["cls_token"].double()
    assert 0.015 < float(pos.std()) < 0.025 and abs(float(pos.mean())) < 0.005, \
        f"pos_embed must start as torch.randn(...) * 0.02: its std is {float(pos.std()):.3g}, " \
        f"mean {float(pos.mean()):.3g}"
    assert 5e-7 < float(cls.std()) < 2e-6, \
        f"cls_token must start as nn.init.normal_(std=1e-6): its std is {float(cls.std()):.3g}"
    linears = [k for k, v in state.items() if k.endswith(".weight") and v.dim() == 2]
    for name in linears:
        std = float(state[name].double().std())
        assert 0.015 < std < 0.025, \
            f"{name} has std {std:.3g}: linear weights start truncated-normal with std 0.02 " \
            f"(finish __init__ with self.apply(self._init_weights))"
        bias = state.get(name[:-len("weight")] + "bias")
        assert bias is None or not bool(bias.any()), f"{name[:-len('weight')]}bias must start at zero (_init_weights)"


# --- ViT: tokens --------------------------------------------------------------------------------------------

def check_features(impl, fields: dict, seed: int, B: int, what: str, *, cls_first: bool = False) -> None:
    """forward_features with the reference's weights (where the names match) equals the reference's remaining steps
    applied to the implementation's own ``patch_embed`` output."""
    ref, ref_state = reference_vit(seed, **fields)
    state, note = matching_state(impl, fields, ref_state)
    images = images_for(fields, B, seed + 1)
    res = run_vit(impl, fields, state, [call("patch_embed", images), call("forward_features", images)], dtype=F64)
    tokens, out = res.outputs
    N, D = ref.patch_embed.n_patches, fields["d_model"]
    if not (isinstance(tokens, torch.Tensor) and tokens.shape == (B, N, D)):
        tokens = ref.patch_embed(images).detach()  # a broken patch_embed is charged to its own tests
    want = reference_features(ref, tokens.double())
    out = expect_tensor(out, f"forward_features output ({what})", shape=tuple(want.shape))
    if cls_first:
        assert_close(out[:, 0], want[:, 0], f"forward_features: the CLS token's final state (token 0){note}")
    assert_close(out, want, f"forward_features output ({what}){note}")


@pytest.mark.points(2)
def test_vit_forward_features_cls(impl):
    """forward_features (B, 1 + N, d_model): CLS in front, + positions (CLS too), pre-LN blocks, final norm (eps 1e-6).

    The blocks see no mask. Compared with the reference run on your own patch_embed output, so only these steps
    count here."""
    check_features(impl, {**SMALL, "pool": "cls", "n_layers": 2}, 50, 3, "CLS pooling, 2 layers", cls_first=True)


@pytest.mark.points(2)
def test_vit_forward_features_mean_and_options(impl):
    """pool="mean": no CLS token, (B, N, d_model); n_heads, n_layers, norm, ffn and d_ff come from the config.

    The config has 4 heads, 2 layers, RMSNorm and a SwiGLU of width 24; compared with the reference run on your own
    patch_embed output."""
    fields = {**SMALL, "pool": "mean", "norm": "rmsnorm", "ffn": "swiglu", "d_ff": 24, "n_layers": 2, "n_heads": 4}
    check_features(impl, fields, 60, 2, "pool='mean', 4 heads, 2 layers, rmsnorm, swiglu")


@pytest.mark.points(1)
def test_vit_patch_method_reaches_patch_embed(impl):
    """The config's patch_method reaches patch_embed: its tokens are exactly PatchEmbedding(..., method=m)'s.

    In float32 the two methods round differently, so the ViT's patch tokens tell which one it uses."""
    images = images_for(SMALL, 4, 90).float()
    for method in ("conv", "reshape"):
        fields = {**SMALL, "patch_method": method}
        res = run_vit(impl, fields, None, [call("patch_embed", images)], dtype=torch.float32, return_state=True)
        proj = {k[len("patch_embed."):]: v for k, v in res.state_dict.items() if k.startswith("patch_embed.proj.")}
        assert proj, "the ViT has no patch_embed.proj"
        alone = impl.run_module(EMBED, (8, 4, 3, 16), {"method": method}, proj, [call("forward", images)],
                                dtype=torch.float32).output
        got = expect_tensor(res.output, f"ViT(patch_method={method!r}).patch_embed(images)", shape=(4, 4, 16))
        assert torch.equal(got, expect_tensor(alone, f"PatchEmbedding(method={method!r}) output")), \
            f"ViT(ViTConfig(patch_method={method!r})).patch_embed does not compute what " \
            f"PatchEmbedding(..., method={method!r}) does: pass method=config.patch_method"


# --- ViT: dropout -------------------------------------------------------------------------------------------

DROP = {**SMALL, "pool": "mean"}


def identity_blocks(state: dict) -> dict:
    """Zero every block's attention output projection and second FFN layer: a pre-LN block is then the identity
    (its dropout acts on zeros)."""
    return {k: (torch.zeros_like(v) if ".attn.proj." in k or ".ffn.fc2." in k else v) for k, v in state.items()}


@pytest.mark.points(1)
def test_vit_dropout_on_embedded_tokens(impl):
    """Train mode: dropout on tokens + positions zeroes about p of every token's entries and scales the rest by 1/(1-p).

    The blocks are made the identity and the final norm is an RMSNorm of weight 1 (it keeps zeros zero and, with
    tokens this small, its eps keeps the scale visible); the result is compared with your own eval-mode output.
    With ordinary blocks, the blocks' residual branches fill most zeros back in: the dropout comes before them."""
    p = 0.3  # not 0.5: 1 - p (a keep probability) and 1/p (a wrong scale) must differ from p and 1/(1-p)
    fields = {**DROP, "norm": "rmsnorm", "dropout": p}
    _, ref_state = reference_vit(120, **fields)
    state, note = matching_state(impl, fields, identity_blocks(ref_state))
    small = {"norm.weight": torch.ones(16, dtype=F64), "pos_embed": rand(1, 4, 16, seed=121, scale=5e-4),
             "patch_embed.proj.weight": rand(16, 3, 4, 4, seed=122, scale=1e-4),
             "patch_embed.proj.bias": rand(16, seed=123, scale=1e-4)}
    state.update({k: v for k, v in small.items() if k in state and state[k].shape == v.shape})
    images = images_for(fields, 8, 124)
    y = features(impl, {**fields, "dropout": 0.0}, state, images)  # no dropout: RMSNorm(tokens + positions)
    y_train = expect_tensor(features(impl, fields, state, images, train=True), "forward_features in train mode",
                            shape=tuple(y.shape))
    dropped = y_train == 0
    frac, per_token = float(dropped.double().mean()), dropped.double().mean(dim=(0, 2))
    hint = "is it applied after adding the positions?" if frac <= 0.2 else "dropout is the probability of zeroing"
    assert 0.2 < frac < 0.4, f"train mode, dropout={p}: {frac:.0%} of the embedded token entries were zeroed " \
                             f"(expected about {p:.0%}; {hint}){note}"
    assert bool(((per_token > 0.1) & (per_token < 0.5)).all()), \
        f"train mode, dropout={p}: the share of zeroed entries per token position is {per_token.tolist()}: dropout " \
        f"must act on every token{note}"
    # RMSNorm(d) with d = mask * z * s, written with y = RMSNorm(z): y_train = mask * y * s / sqrt(s^2 a + 1 - b)
    s = 1.0 / (1.0 - p)
    a, b = (y.double() ** 2 * ~dropped).mean(-1, keepdim=True), (y.double() ** 2).mean(-1, keepdim=True)
    want = ~dropped * y.double() * s / torch.sqrt(s * s * a + 1 - b)
    # rtol 1e-5: a model without a final norm (charged elsewhere) has y_train = mask * y * s up to ~1e-7 here
    assert_close(y_train, want, f"train mode, dropout={p}: the kept entries (dropout on tokens + positions, before "
                                f"the blocks, kept ones scaled by 1/(1-p) = {s:g}){note}", rtol=1e-5)
    # With ordinary blocks an entry stays zero only if the blocks' two residual branches were dropped there too
    # (p^3 = 2.7 %); a token dropout after the blocks would leave about p = 30 % zeros.
    state, _ = matching_state(impl, fields, ref_state)
    zeros = float((features(impl, fields, state, images, train=True) == 0).double().mean())
    assert zeros < 0.15, f"train mode, dropout={p}, ordinary blocks: {zeros:.0%} of the outputs are exactly zero " \
                         f"(about 3 % expected): the token dropout must come before the blocks, not after them{note}"


@pytest.mark.points(1)
def test_vit_dropout_reaches_blocks(impl):
    """config.dropout reaches the encoder blocks: with all-zero embedded tokens, train mode still differs from eval.

    (All-zero tokens leave the token dropout nothing to drop, so any difference comes from the blocks.)"""
    fields = {**DROP, "dropout": 0.5}
    _, ref_state = reference_vit(130, **fields)
    ref_state.update({k: torch.zeros_like(v) for k, v in ref_state.items()
                      if k.startswith("patch_embed.") or k == "pos_embed"})
    state, note = matching_state(impl, fields, ref_state)
    images = images_for(fields, 4, 131)
    y_eval = features(impl, fields, state, images)
    y_train = expect_tensor(features(impl, fields, state, images, train=True), "forward_features in train mode",
                            shape=tuple(y_eval.shape))
    assert_finite(y_train, "forward_features in train mode")
    changed = float(((y_train - y_eval).abs() > 1e-6).double().mean())
    assert changed > 0.25, f"with dropout=0.5 in train mode, only {changed:.0%} of the outputs differ from eval mode " \
                           f"although the embedded tokens are all zero: pass dropout=config.dropout to every " \
                           f"EncoderBlock{note}"


@pytest.mark.points(1)
def test_vit_no_dropout_in_eval_or_at_zero(impl):
    """No dropout in eval mode (dropout=0.5), nor with dropout=0.0 in train mode: both equal the dropout-free output."""
    _, ref_state = reference_vit(140, **DROP)
    state, _ = matching_state(impl, DROP, ref_state)
    images = images_for(DROP, 3, 141)
    plain = features(impl, {**DROP, "dropout": 0.0}, state, images)
    assert_close(features(impl, {**DROP, "dropout": 0.5}, state, images), plain,
                 "eval mode with dropout=0.5 vs no dropout (eval mode must not drop or rescale anything)")
    assert_close(features(impl, {**DROP, "dropout": 0.0}, state, images, train=True), plain,
                 "train mode with dropout=0.0 vs eval mode (dropout=0.0 means no dropout)")


# --- ViT: head, loss, gradients -------------------------------------------------------------------------------

@pytest.mark.points(2)
@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_vit_forward_head_pooling(impl, pool):
    """forward_head pools (CLS: token 0; mean: the average of all tokens, no CLS there) and applies head with bias."""
    fields = {**SMALL, "pool": pool}
    state = own_state(impl, fields)
    assert "head.weight" in state and "head.bias" in state, "head must be nn.Linear(d_model, n_classes) with a bias"
    state.update({"head.weight": rand(3, 16, seed=70, scale=0.3), "head.bias": rand(3, seed=71, scale=0.3)})
    n_tokens = 5 if pool == "cls" else 4
    tokens = rand(3, n_tokens, 16, seed=72)
    out = run_vit(impl, fields, state, [call("forward_head", tokens)], dtype=F64).output
    out = expect_tensor(out, f"forward_head output ({pool} pooling)", shape=(3, 3))
    pooled = tokens[:, 0] if pool == "cls" else tokens.mean(dim=1)
    assert_close(out, F.linear(pooled, state["head.weight"], state["head.bias"]),
                 f"forward_head output ({pool} pooling: head({'x[:, 0]' if pool == 'cls' else 'x.mean(dim=1)'}))")


@pytest.mark.points(2)
def test_vit_forward_returns_logits_and_loss(impl):
    """forward returns (forward_head(forward_features(x)), cross-entropy loss); without targets (logits, None)."""
    images, targets = images_for(SMALL, 4, 81), torch.tensor([0, 2, 1, 2])
    first = run_vit(impl, SMALL, None, [call("forward_features", images)], dtype=F64, return_state=True)
    feats = first.output
    res = run_vit(impl, SMALL, first.state_dict,
                  [call("forward_head", feats), call("forward", images, targets), call("forward", images)], dtype=F64)
    want_logits, with_t, without = res.outputs
    want_logits = expect_tensor(want_logits, "forward_head(forward_features(images))", shape=(4, 3))
    assert isinstance(with_t, (tuple, list)) and len(with_t) == 2, \
        f"forward(images, targets) must return (logits, loss), got {type(with_t).__name__}"
    assert_close(expect_tensor(with_t[0], "logits", shape=(4, 3)), want_logits,
                 "logits vs forward_head(forward_features(images))")
    loss = expect_tensor(with_t[1], "loss", shape=())
    assert_close(loss.double(), F.cross_entropy(want_logits, targets), "cross-entropy loss", check_dtype=False,
                 rtol=1e-5, atol=1e-7)
    assert isinstance(without, (tuple, list)) and len(without) == 2 and without[1] is None, \
        "forward(images) without targets must return (logits, None)"
    assert_close(without[0], want_logits, "logits without targets")


@pytest.mark.points(2)
def test_vit_gradients_reach_every_parameter(impl):
    """The loss's gradient reaches every parameter, and the CLS token and the positions are trainable nn.Parameters."""
    images, targets = images_for(SMALL, 4, 101), torch.tensor([1, 0, 2, 1])
    res = run_vit(impl, SMALL, None, [call("forward", images, targets)], dtype=F64, backward=torch.tensor(1.0),
                  grad_index=1)
    for name in ("cls_token", "pos_embed"):
        assert name in res.param_grads, f"{name} must be an nn.Parameter (trainable), not a buffer or a plain tensor"
    missing = [n for n, g in res.param_grads.items() if g is None or not bool(g.abs().sum() > 0)]
    assert not missing, f"no gradient reaches {', '.join(missing[:6])}"
    for name, g in res.param_grads.items():
        assert_finite(g, f"gradient w.r.t. {name}")
