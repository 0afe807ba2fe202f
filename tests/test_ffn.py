"""Chapter 5: the position-wise FFN and SwiGLU."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tfmcourse import FeedForward, SwiGLU, build_ffn

pytestmark = pytest.mark.ch05


def test_ffn_formula_relu():
    ffn = FeedForward(6, 10, activation="relu").double()
    x = torch.randn(2, 3, 6, dtype=torch.float64)
    w1, b1, w2, b2 = ffn.fc1.weight, ffn.fc1.bias, ffn.fc2.weight, ffn.fc2.bias
    assert torch.allclose(ffn(x), torch.clamp(x @ w1.T + b1, min=0) @ w2.T + b2)


def test_ffn_is_position_wise():
    """Each token is transformed alone: permuting positions permutes outputs; a 1x1 conv does the same."""
    ffn = FeedForward(8, 16, activation="gelu").eval()
    x = torch.randn(2, 7, 8)
    perm = torch.randperm(7)
    assert torch.allclose(ffn(x)[:, perm], ffn(x[:, perm]), atol=1e-6)
    conv1 = nn.Conv1d(8, 16, 1)
    conv2 = nn.Conv1d(16, 8, 1)
    with torch.no_grad():
        conv1.weight.copy_(ffn.fc1.weight[..., None]); conv1.bias.copy_(ffn.fc1.bias)
        conv2.weight.copy_(ffn.fc2.weight[..., None]); conv2.bias.copy_(ffn.fc2.bias)
    y_conv = conv2(F.gelu(conv1(x.transpose(1, 2)))).transpose(1, 2)
    assert torch.allclose(ffn(x), y_conv, atol=1e-5)


def test_swiglu_formula_and_parameter_budget():
    sw = SwiGLU(8, 12).double()
    x = torch.randn(3, 8, dtype=torch.float64)
    wg, wu = sw.fc1.weight.split(12)
    assert torch.allclose(sw(x), (F.silu(x @ wg.T) * (x @ wu.T)) @ sw.fc2.weight.T)
    assert sum(p.numel() for p in sw.parameters()) == 3 * 8 * 12


def test_build_ffn():
    assert isinstance(build_ffn("swiglu", 4, 8), SwiGLU)
    assert isinstance(build_ffn("gelu", 4, 8).act, nn.GELU)
    with pytest.raises(ValueError, match="swiglu"):
        build_ffn("tanh", 4, 8)
