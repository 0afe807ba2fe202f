"""Plots and attention recording used by the book."""
import matplotlib

matplotlib.use("Agg")

import pytest
import torch

from tfmcourse import GPT, GPTConfig
from tfmcourse.viz.attention import plot_attention, record_attention

pytestmark = pytest.mark.ch04


def test_record_attention_gives_each_layers_weights_and_restores_fused_path():
    model = GPT(GPTConfig(vocab_size=20, block_size=8, n_layers=2, n_heads=2, d_model=8)).eval()
    idx = torch.randint(0, 20, (1, 6))
    with record_attention(model) as maps:
        logits, _ = model(idx)
    assert set(maps) == {"blocks.0.attn", "blocks.1.attn"}
    w = maps["blocks.1.attn"]
    assert w.shape == (1, 2, 6, 6)
    assert torch.allclose(w.sum(-1), torch.ones(1, 2, 6)) and torch.all(w.triu(1) == 0)  # causal
    assert torch.allclose(model(idx)[0], logits, atol=1e-6)
    assert all(not m.keep_weights for m in model.modules() if hasattr(m, "keep_weights"))


def test_plot_attention_one_axis_per_head():
    fig = plot_attention(torch.rand(3, 4, 4), x_labels=list("abcd"))
    assert sum(ax.has_data() for ax in fig.axes) == 3
