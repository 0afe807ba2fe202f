"""Chapter 2: LayerNorm and RMSNorm written out agree with PyTorch's."""
import pytest
import torch
from torch import nn

from tfmcourse import LayerNorm, RMSNorm, build_norm

pytestmark = pytest.mark.ch02


def _randomise(*mods):
    with torch.no_grad():
        for m in mods:
            for p in m.parameters():
                p.normal_()


@pytest.mark.parametrize("bias", [True, False])
def test_layernorm_equals_torch_values_and_grads(bias):
    ours, ref = LayerNorm(12, bias=bias).double(), nn.LayerNorm(12, bias=bias).double()
    _randomise(ref)
    ours.load_state_dict(ref.state_dict())
    x = (torch.randn(3, 5, 12, dtype=torch.float64) * 4 + 2).requires_grad_()
    x2 = x.detach().clone().requires_grad_()
    y, y_ref = ours(x), ref(x2)
    assert torch.allclose(y, y_ref, atol=1e-10)
    g = torch.randn_like(y)
    y.backward(g)
    y_ref.backward(g)
    assert torch.allclose(x.grad, x2.grad, atol=1e-10)
    for (n, p), (_, q) in zip(ours.named_parameters(), ref.named_parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-10), n


def test_rmsnorm_equals_torch_values_and_grads():
    ours, ref = RMSNorm(10, eps=1e-6).double(), nn.RMSNorm(10, eps=1e-6).double()
    _randomise(ref)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(4, 10, dtype=torch.float64, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    ours(x).pow(2).sum().backward()
    ref(x2).pow(2).sum().backward()
    assert torch.allclose(ours(x), ref(x2), atol=1e-10)
    assert torch.allclose(x.grad, x2.grad, atol=1e-10)
    assert torch.allclose(ours.weight.grad, ref.weight.grad, atol=1e-10)


def test_layernorm_normalises_each_token_over_features_only():
    x = torch.randn(2, 7, 16) * 5 + 3
    y = LayerNorm(16)(x)
    assert torch.allclose(y.mean(-1), torch.zeros(2, 7), atol=1e-5)
    assert torch.allclose(y.var(-1, unbiased=False), torch.ones(2, 7), atol=1e-3)
    # a token's output does not depend on other tokens or other sequences in the batch
    x2 = x.clone()
    x2[1] = 100.0
    assert torch.allclose(LayerNorm(16)(x2)[0], y[0])


def test_norms_keep_low_precision_dtype():
    x = torch.randn(2, 8, dtype=torch.bfloat16)
    assert LayerNorm(8)(x).dtype == torch.bfloat16
    assert RMSNorm(8)(x).dtype == torch.bfloat16


def test_build_norm_choices():
    assert isinstance(build_norm("layernorm", 4), nn.LayerNorm)
    assert isinstance(build_norm("rmsnorm", 4, fused=False), RMSNorm)
    with pytest.raises(ValueError, match="layernorm"):
        build_norm("batchnorm", 4)
