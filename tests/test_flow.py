"""Chapter 1: the shape tracer."""
import pytest
import torch

from tfmcourse import GPT, GPTConfig, ViT, ViTConfig, trace_flow

pytestmark = pytest.mark.ch01


def test_trace_gpt_records_bt_c_shapes():
    cfg = GPTConfig(vocab_size=30, block_size=16, n_layers=2, n_heads=2, d_model=8)
    trace = trace_flow(GPT(cfg), torch.randint(0, 30, (3, 5)))
    by_name = {r.name: r for r in trace}
    assert by_name[""].kind == "GPT" and by_name[""].out_shape == (3, 5, 30)
    assert by_name["tok_emb"].out_shape == (3, 5, 8)
    assert by_name["blocks.1.attn.qkv"].out_shape == (3, 5, 24)
    assert by_name["blocks.0.ffn.fc1"].out_shape == (3, 5, 32)
    assert trace[0].name == ""  # call order: the model opens the trace
    assert [r.name for r in trace].index("blocks.0") < [r.name for r in trace].index("blocks.1")
    text = str(trace)
    assert "tok_emb" in text and "(3, 5, 8)" in text
    assert "<table>" in trace._repr_html_()


def test_trace_depth_limit_and_no_leftover_hooks():
    model = ViT(ViTConfig(image_size=8, patch_size=4, in_chans=1, n_classes=3, d_model=8, n_layers=1, n_heads=2))
    trace = trace_flow(model, torch.randn(2, 1, 8, 8), max_depth=1)
    assert all(r.depth <= 1 for r in trace)
    assert {r.name for r in trace} >= {"", "patch_embed", "norm", "head"}
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
