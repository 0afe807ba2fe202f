"""Plot, measurement and widget helpers used by chapters 1-3 of the book."""
import math

import matplotlib

matplotlib.use("Agg")

import ipywidgets as widgets  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tfmcourse import EncoderBlock, causal_mask, sinusoidal_encoding  # noqa: E402
from tfmcourse.viz import norms as vnorms  # noqa: E402
from tfmcourse.viz import positions as vpos  # noqa: E402
from tfmcourse.viz import qkv as vqkv  # noqa: E402
from tfmcourse.viz.source import show_source, source_of  # noqa: E402
from tfmcourse.widgets import attention as wattn  # noqa: E402
from tfmcourse.widgets import norms as wnorms  # noqa: E402
from tfmcourse.widgets import positions as wpos  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _stack_and_control(box: widgets.VBox):
    ctrl, stack = box.children[-2], box.children[-1]
    assert isinstance(stack, widgets.Stack)
    return ctrl, stack


# ---------------------------------------------------------------- chapter 1: positions


@pytest.mark.ch01
def test_one_hot_positions_have_no_notion_of_nearness():
    sim = vpos.position_similarity(vpos.one_hot_positions(10))
    assert torch.equal(sim, torch.eye(10))


@pytest.mark.ch01
def test_sinusoidal_similarity_depends_only_on_offset_and_decays_nearby():
    sim = vpos.position_similarity(sinusoidal_encoding(40, 32))
    assert torch.allclose(sim.diagonal(), torch.ones(40), atol=1e-6)
    for off in (1, 3, 10):
        d = sim.diagonal(off)
        assert (d - d[0]).abs().max() < 1e-5  # Toeplitz: constant along each diagonal
    assert sim[0, 0] > sim[0, 1] > sim[0, 2] > sim[0, 4]  # nearer positions are more alike


@pytest.mark.ch01
def test_rotary_score_matrix_is_toeplitz_and_matches_plain_dot_at_zero_offset():
    torch.manual_seed(0)
    q, k = torch.randn(8), torch.randn(8)
    S = vpos.rotary_score_matrix(q, k, 12)
    assert S.shape == (12, 12)
    for off in range(-11, 12):
        d = S.diagonal(off)
        assert (d - d[0]).abs().max() < 1e-4
    assert S[0, 0] == pytest.approx(float(q @ k), abs=1e-5)  # no rotation at offset 0
    assert abs(S[0, 1] - S[0, 2]) > 1e-3  # but it does depend on the offset


@pytest.mark.ch01
def test_position_plots_draw_what_they_are_given():
    pe = sinusoidal_encoding(16, 8)
    fig = vpos.plot_position_table(pe)
    assert fig.axes[0].images[0].get_array().shape == (16, 8)
    fig = vpos.plot_position_curves(pe, dims=[0, 3])
    assert len(fig.axes[0].lines) == 2
    fig = vpos.plot_position_similarity({"a": pe, "b": vpos.one_hot_positions(16)})
    assert sum(bool(ax.images) for ax in fig.axes) == 2
    fig = vpos.plot_rotary_pairs(torch.randn(6), 10)
    assert len(fig.axes) == 3  # one panel per pair
    offsets = fig.axes[0].collections[0].get_offsets()
    radii = (offsets ** 2).sum(1) ** 0.5
    assert radii.max() - radii.min() < 1e-5  # rotation keeps each pair on its circle


@pytest.mark.ch01
def test_position_explorer_has_one_png_frame_per_position_linked_in_the_browser():
    frames = wpos.position_frames([0, 5], n_positions=16, d_model=8)
    assert len(frames) == 2 and all(f.startswith(PNG) for f in frames) and frames[0] != frames[1]
    box = wpos.position_explorer(n_positions=16, d_model=8, step=8)
    ctrl, stack = _stack_and_control(box)
    assert list(ctrl.options) == ["0", "8"] and len(stack.children) == 2
    assert all(isinstance(c, widgets.Image) for c in stack.children)
    assert stack.selected_index == ctrl.index


@pytest.mark.ch01
def test_source_of_shows_ungraded_code_and_refuses_exercise_answers():
    from tfmcourse import GPT
    from tfmcourse.attention import attention, causal_mask
    from tfmcourse.multihead import KVCache

    src = source_of(GPT.forward_features)
    assert src.startswith("def forward_features") and "self.blocks" in src
    assert "def attention" in show_source(attention).data
    for graded in (causal_mask, KVCache, KVCache.update):
        with pytest.raises(ValueError, match=r"answer to a chapter [34] exercise"):
            source_of(graded)


# ---------------------------------------------------------------- chapter 2: residuals and norms


@pytest.mark.ch02
def test_residual_keeps_the_input_gradient_plain_stack_loses_it():
    torch.manual_seed(0)
    blocks = [EncoderBlock(16, 2, 32) for _ in range(8)]
    x = torch.randn(2, 4, 16)
    res = vnorms.layer_input_grad_norms(blocks, x, residual=True, norms=False)
    plain = vnorms.layer_input_grad_norms(blocks, x, residual=False, norms=False)
    assert len(res) == len(plain) == 8
    assert res[0] > 1e3 * plain[0]
    assert plain[0] < plain[-1]  # the plain gradient shrinks towards the input


@pytest.mark.ch02
def test_stack_grad_norms_is_reproducible():
    a = vnorms.stack_grad_norms(3, residual=True, norms=True, seeds=(0, 1))
    b = vnorms.stack_grad_norms(3, residual=True, norms=True, seeds=(0, 1))
    assert a == b and len(a) == 3 and all(v > 0 for v in a)


@pytest.mark.ch02
def test_progression_batch_is_arithmetic_mod_v():
    seq = vnorms.progression_batch(5, 9, 16, torch.Generator().manual_seed(0))
    assert seq.shape == (5, 9) and seq.min() >= 0 and seq.max() < 16
    steps = (seq[:, 1:] - seq[:, :-1]) % 16
    assert (steps == steps[:, :1]).all() and (steps[:, 0] != 0).all()


@pytest.mark.ch02
def test_toy_stack_shapes_and_post_ln_has_no_final_norm():
    post = vnorms.ToyStack(16, 8, d_model=16, n_heads=2, n_layers=2, norm_first=False)
    pre = vnorms.ToyStack(16, 8, d_model=16, n_heads=2, n_layers=2, norm_first=True)
    assert post(torch.randint(0, 16, (3, 8))).shape == (3, 8, 16)
    assert isinstance(post.norm, torch.nn.Identity) and isinstance(pre.norm, torch.nn.LayerNorm)
    assert not post.blocks[0].norm_first and pre.blocks[0].norm_first


@pytest.mark.ch02
def test_train_toy_stack_learns_and_is_deterministic():
    kw = dict(norm_first=True, warmup=0, lr=1e-2, steps=60, n_layers=2, d_model=16)
    a, b = vnorms.train_toy_stack(**kw), vnorms.train_toy_stack(**kw)
    assert a == b and len(a) == 60
    assert a[0] == pytest.approx(math.log(16), abs=0.6)  # starts near uniform guessing
    assert sum(a[-10:]) / 10 < a[0] - 0.5  # found part of the rule


@pytest.mark.ch02
def test_post_ln_amplifies_one_adam_step_more_than_pre_ln():
    post = vnorms.update_sensitivity(norm_first=False, n_layers=6)
    pre = vnorms.update_sensitivity(norm_first=True, n_layers=6)
    assert post > 2 * pre > 0


@pytest.mark.ch02
def test_norm_plots_and_depth_explorer():
    fig = vnorms.plot_grad_norms({"a": [1.0, 0.1], "b": [0.0, 1.0]})
    assert len(fig.axes[0].lines) == 2 and fig.axes[0].get_yscale() == "log"
    fig = vnorms.plot_loss_curves({"x": [3.0] * 30, "y": [2.0] * 30}, smooth=5, reference=2.5)
    assert len(fig.axes[0].lines) == 3
    assert len(fig.axes[0].lines[0].get_xdata()) == 26  # moving average over 5 of 30 steps
    frames = wnorms.depth_frames([1, 3], seeds=(0,))
    assert len(frames) == 2 and all(f.startswith(PNG) for f in frames)


# ---------------------------------------------------------------- chapter 3: queries, keys, values


@pytest.mark.ch03
def test_attention_entropy_extremes():
    assert vqkv.attention_entropy(torch.full((2, 8), 1 / 8)) == pytest.approx(math.log(8), abs=1e-6)
    assert vqkv.attention_entropy(torch.eye(4)).abs().max() < 1e-6


@pytest.mark.ch03
def test_score_statistics_show_variance_d_k_and_saturation_without_scale():
    st = vqkv.score_statistics([1, 64, 1024], n_keys=16, n_queries=256)
    assert st["var_raw"][1] == pytest.approx(64, rel=0.3) and st["var_raw"][2] == pytest.approx(1024, rel=0.3)
    assert torch.allclose(st["var_scaled"][1:], torch.ones(2), atol=0.3)
    assert st["max_raw"][2] > 0.8 > 0.5 > st["max_scaled"][2]
    assert st["entropy_raw"][2] < 0.5 < 1.5 < st["entropy_scaled"][2]
    assert len(vqkv.plot_score_statistics(st).axes) == 3


@pytest.mark.ch03
def test_mask_weights_respect_each_mask_kind():
    torch.manual_seed(0)
    q, k = torch.randn(2, 1, 5, 4), torch.randn(2, 1, 5, 4)
    lengths = torch.tensor([5, 2])
    for kind in wattn.MASK_KINDS:
        mask, w = wattn.mask_weights(kind, q, k, lengths)
        assert mask.shape == w.shape == (2, 5, 5) and mask.dtype == torch.bool
        assert torch.all(w[~mask] == 0)
        assert torch.allclose(w.sum(-1), torch.ones(2, 5), atol=1e-6)
    mask, _ = wattn.mask_weights("causal + padding", q, k, lengths)
    assert torch.equal(mask[0], causal_mask(5)) and not mask[1, :, 2:].any()
    with pytest.raises(ValueError, match="kind"):
        wattn.mask_weights("diagonal", q, k, lengths)


@pytest.mark.ch03
def test_attention_explorers_precompute_frames():
    frames = wattn.scaling_frames([1, 256], T=4)
    assert len(frames) == 2 and all(f.startswith(PNG) for f in frames)
    ctrl, stack = _stack_and_control(wattn.scaling_explorer(dims=(4, 64), T=4))
    assert list(ctrl.options) == ["4", "64"] and len(stack.children) == 2
    box = wattn.mask_explorer([["a", "b", "c"], ["d", "<pad>", "<pad>"]], d_k=4)
    ctrl, stack = _stack_and_control(box)
    assert isinstance(ctrl, widgets.Dropdown) and list(ctrl.options) == list(wattn.MASK_KINDS)
    assert len(stack.children) == len(wattn.MASK_KINDS)
    assert len({img.value for img in stack.children}) == len(wattn.MASK_KINDS)  # every kind looks different
