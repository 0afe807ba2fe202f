"""Plot, measurement and widget helpers behind chapters 4 (heads), 5 (FFN and costs) and 7 (ViT)."""
import matplotlib

matplotlib.use("Agg")

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from tfmcourse import EncoderBlock, FeedForward, MultiHeadAttention, SwiGLU, ViT, ViTConfig
from tfmcourse.attention import attention
from tfmcourse.viz.attention import record_attention
from tfmcourse.viz.costs import (COMPONENTS, crossover_seq_len, layer_flops, layer_params, peak_tensor_memory,
                                 plot_flop_shares, plot_flops_vs_seq_len, plot_scaling, time_call)
from tfmcourse.viz.ffn import plot_ablation, plot_activations, plot_token_influence, token_influence
from tfmcourse.viz.heads import offset_profile, plot_head_split, plot_offset_profile
from tfmcourse.viz.vision import (attention_rollout, cls_attention, plot_attention_overlay, plot_patch_grid,
                                  plot_patch_sequence, plot_position_similarity, position_similarity)
from tfmcourse.widgets.costs import flop_share_explorer
from tfmcourse.widgets.frames import fig_to_png, frame_explorer
from tfmcourse.widgets.heads import attention_explorer
from tfmcourse.widgets.vision import patch_size_explorer, vit_attention_explorer

pytestmark = [pytest.mark.ch04, pytest.mark.ch05, pytest.mark.ch07]

PNG = b"\x89PNG\r\n\x1a\n"


def _frames(box: widgets.VBox) -> list[widgets.Image]:
    stack = next(c for c in box.children if isinstance(c, widgets.Stack))
    return list(stack.children)


def _control(box: widgets.VBox):
    return next(c for c in box.children if isinstance(c, (widgets.SelectionSlider, widgets.Dropdown)))


# ----------------------------------------------------------------------------------------------- frames
def test_frame_explorer_links_control_to_stack_in_the_browser():
    pngs = []
    for i in range(3):
        fig, ax = plt.subplots()
        ax.plot([0, i])
        pngs.append(fig_to_png(fig))
    assert all(p.startswith(PNG) for p in pngs) and not plt.get_fignums()  # figures are closed
    box = frame_explorer(pngs, ["a", "b", "c"], value=2, control="dropdown")
    frames, ctrl = _frames(box), _control(box)
    assert [bytes(f.value) for f in frames] == pngs
    assert ctrl.index == 2 and box.children[1].selected_index == 2
    assert box.link.source == (ctrl, "index") and box.link.target == (box.children[1], "selected_index")


def test_frame_explorer_rejects_bad_input():
    png = fig_to_png(plt.figure())
    with pytest.raises(ValueError, match="one label per frame"):
        frame_explorer([png, png], ["a"])
    with pytest.raises(ValueError, match="unique"):
        frame_explorer([png, png], ["a", "a"])
    with pytest.raises(ValueError, match="control"):
        frame_explorer([png], ["a"], control="knob")
    with pytest.raises(ValueError, match="frame index"):
        frame_explorer([png], ["a"], value=3)


# ----------------------------------------------------------------------------------------- ch04 heads
def test_plot_head_split_draws_every_cell_three_times():
    fig = plot_head_split(T=3, d_model=8, n_heads=2)
    assert len(fig.axes) == 3
    assert sum(len(ax.patches) for ax in fig.axes) == 3 * 3 * 8
    with pytest.raises(ValueError, match="divisible"):
        plot_head_split(T=2, d_model=6, n_heads=4)


def test_offset_profile_finds_how_far_back_each_head_looks():
    T = 6
    w = torch.zeros(2, T, T)
    for t in range(T):
        w[0, t, max(t - 2, 0)] = 1.0  # head 0: two back (or the first token)
        w[1, t, t] = 1.0  # head 1: itself
    prof = offset_profile(w[None].expand(3, -1, -1, -1), max_offset=4)  # batch is averaged
    assert prof.shape == (2, 5)
    assert prof[0].argmax() == 2 and prof[0, 2] == 1.0
    assert prof[1, 0] == 1.0 and prof[1, 1:].sum() == 0
    assert len(plot_offset_profile(prof).axes) == 2
    with pytest.raises(ValueError, match="T == S"):
        offset_profile(torch.rand(1, 3, 4))


def test_attention_explorer_has_one_frame_per_recorded_layer():
    from tfmcourse import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=11, block_size=6, n_layers=2, n_heads=2, d_model=8)).eval()
    with torch.no_grad(), record_attention(model) as maps:
        model(torch.randint(0, 11, (1, 5)))
    box = attention_explorer({name: w[0] for name, w in maps.items()}, notes={"blocks.0.attn": "first"})
    assert len(_frames(box)) == 2 and all(bytes(f.value).startswith(PNG) for f in _frames(box))
    assert list(_control(box).options) == ["blocks.0.attn", "blocks.1.attn"]
    with pytest.raises(ValueError, match="one sequence"):
        attention_explorer({"x": torch.rand(1, 2, 3, 3)})


def test_peak_tensor_memory_sees_the_weights_only_on_the_manual_path():
    q, k, v = (torch.randn(1, 2, 128, 16) for _ in range(3))
    weights_bytes = 2 * 128 * 128 * 4
    with torch.no_grad():
        out_m, peak_m, ops_m = peak_tensor_memory(lambda: attention(q, k, v, is_causal=True, fused=False))
        out_f, peak_f, ops_f = peak_tensor_memory(lambda: attention(q, k, v, is_causal=True, fused=True))
    assert torch.allclose(out_m, out_f, atol=1e-5)
    assert peak_m >= 2 * weights_bytes  # scores and weights are alive together at some point
    assert peak_f < weights_bytes
    assert "_softmax" in ops_m and "_softmax" not in ops_f


def test_time_call_and_plot_scaling():
    calls = []
    t = time_call(lambda: calls.append(1), repeat=3, warmup=2)
    assert t >= 0 and len(calls) == 5
    with pytest.raises(ValueError, match="reduce"):
        time_call(lambda: None, reduce="mean")
    fig = plot_scaling([1, 2, 4], {"a": [1, 2, 3], "b": [3, 2, 1]}, xlabel="x", ylabel="y")
    assert len(fig.axes[0].lines) == 2


# ------------------------------------------------------------------------------------------ ch05 costs
@pytest.mark.parametrize("T", [4, 16])
def test_layer_flops_match_flop_counter(T):
    d = 32
    block = EncoderBlock(d, 4, 4 * d).eval()
    block.attn.fused = False  # QK^T and AV as visible matmuls
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        block(torch.randn(2, T, d))
    assert counter.get_total_flops() == 2 * sum(layer_flops(T, d).values())  # batch of 2


def test_layer_params_match_modules_and_crossovers():
    d = 48
    block = EncoderBlock(d, 4, 4 * d)
    assert layer_params(d) == {"attention": sum(p.numel() for p in block.attn.parameters()),
                               "FFN": sum(p.numel() for p in block.ffn.parameters())}
    assert layer_params(d, 64, swiglu=True)["FFN"] == sum(p.numel() for p in SwiGLU(d, 64).parameters())
    assert crossover_seq_len(768) == {"projections": 1536, "FFN": 3072, "projections + FFN": 4608}
    f = layer_flops(crossover_seq_len(768)["FFN"], 768)
    assert f[COMPONENTS[1]] + f[COMPONENTS[2]] == f[COMPONENTS[3]]
    cross = layer_flops(10, 8, S=20)
    assert cross[COMPONENTS[1]] == 2 * 10 * 20 * 8


def test_token_influence_ffn_is_diagonal_attention_is_not():
    x = torch.randn(5, 8)
    ffn_map = token_influence(FeedForward(8, 16, activation="gelu"), x)
    attn = MultiHeadAttention(8, 2)
    attn_map = token_influence(attn, x)
    causal_map = token_influence(lambda h: attn(h, is_causal=True), x)
    assert ffn_map.shape == (5, 5)
    assert torch.all(ffn_map.diagonal() > 0) and torch.all((ffn_map - torch.diag(ffn_map.diagonal())) == 0)
    assert torch.all(attn_map > 0)
    below = torch.ones(5, 5, dtype=torch.bool).tril()
    assert torch.all(causal_map[~below] == 0) and torch.all(causal_map[below] > 0)
    assert len(plot_token_influence({"ffn": ffn_map, "attn": attn_map}).axes) == 2


def test_ffn_plots():
    assert len(plot_activations().axes) == 4  # three panels and a colour bar
    fig = plot_flops_vs_seq_len(256, seq_lens=[64, 256, 1024])
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 3 + 3  # three curves, three crossover markers
    models = {"a": dict(d_model=64), "b": dict(d_model=128, d_ff=256, swiglu=True)}
    fig = plot_flop_shares(512, models)
    assert len(fig.axes[0].patches) == len(models) * len(COMPONENTS)
    fig = plot_ablation({"m": [2.0] * 30}, [0, 10, 20], {"m": [0.1, 0.5, 0.9]}, baselines={"guess": 0.1})
    assert len(fig.axes) == 2 and len(fig.axes[1].lines) == 2


def test_flop_share_explorer_has_one_frame_per_length():
    box = flop_share_explorer({"tiny": dict(d_model=16)}, seq_lens=[8, 64, 512])
    assert len(_frames(box)) == 3 and _control(box).options == ("8", "64", "512")


# -------------------------------------------------------------------------------------------- ch07 ViT
def test_patch_plots():
    img = torch.arange(64.0).view(8, 8)
    fig = plot_patch_grid(img, 2)
    assert [t.get_text() for t in fig.axes[0].texts] == [str(i) for i in range(16)]
    with pytest.raises(ValueError, match="divide"):
        plot_patch_grid(img, 3)
    assert len(plot_patch_sequence(img, 2, max_patches=6).axes) == 6
    assert len(plot_patch_grid(torch.rand(3, 32, 32), 4).axes) == 1  # RGB works too


def test_cls_attention_and_rollout():
    w = torch.rand(2, 3, 5, 5).softmax(-1)  # CLS + a 2x2 grid
    cls = cls_attention(w, (2, 2))
    assert cls.shape == (2, 3, 2, 2) and torch.equal(cls[1, 2].flatten(), w[1, 2, 0, 1:])
    eye = torch.eye(5).expand(2, 3, 5, 5)
    assert torch.allclose(attention_rollout([eye, eye]), torch.eye(5).expand(2, 5, 5))
    roll = attention_rollout([w, w])
    assert torch.allclose(roll.sum(-1), torch.ones(2, 5))
    with pytest.raises(ValueError, match="at least one"):
        attention_rollout([])
    fig = plot_attention_overlay(torch.rand(3, 1, 4, 4), torch.rand(3, 2, 2), titles=["a", "b", "c"], ncols=2)
    assert sum(ax.has_data() for ax in fig.axes) == 3


def test_position_similarity():
    pos = torch.randn(1, 6, 10)
    sim = position_similarity(pos, (2, 3))
    flat = sim.reshape(6, 6)
    assert sim.shape == (2, 3, 2, 3)
    assert torch.allclose(flat.diagonal(), torch.ones(6)) and torch.allclose(flat, flat.T)
    assert torch.allclose(flat[0, 4], torch.cosine_similarity(pos[0, 0], pos[0, 4], dim=0))
    with pytest.raises(ValueError, match="grid"):
        position_similarity(torch.randn(7, 10), (2, 3))
    fig = plot_position_similarity(sim)
    assert len(fig.axes) == 6 + 1  # one map per position and a colour bar


def test_vision_explorers():
    box = patch_size_explorer(torch.rand(3, 16, 16), [2, 4, 8])
    assert len(_frames(box)) == 3 and _control(box).index == 1
    model = ViT(ViTConfig(image_size=8, patch_size=4, in_chans=1, n_classes=3, d_model=8, n_layers=2,
                          n_heads=2)).eval()
    images = torch.rand(3, 1, 8, 8)
    with torch.no_grad(), record_attention(model) as maps:
        model(images)
    box = vit_attention_explorer(images, [maps["blocks.0.attn"], maps["blocks.1.attn"]], (2, 2),
                                 titles=["a", "b", "c"])
    assert len(_frames(box)) == 3 and all(bytes(f.value).startswith(PNG) for f in _frames(box))
