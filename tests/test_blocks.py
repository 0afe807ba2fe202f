"""Chapter 2 (and 6): encoder/decoder blocks equal PyTorch's layers in post-LN and pre-LN form."""
import pytest
import torch
from torch import nn

from tfmcourse import DecoderBlock, Decoder, Encoder, EncoderBlock, causal_mask
from tfmcourse.interop import (load_from_torch_decoder_layer, load_from_torch_encoder_layer,
                               load_from_torch_transformer, to_torch_mask)

pytestmark = pytest.mark.ch02

D, H, F = 16, 4, 32


def _randomise(m):
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_block_equals_torch(norm_first, activation):
    ref = nn.TransformerEncoderLayer(D, H, F, dropout=0.0, activation=activation, batch_first=True,
                                     norm_first=norm_first).double().eval()
    _randomise(ref)
    ours = load_from_torch_encoder_layer(EncoderBlock(D, H, F, ffn=activation, norm_first=norm_first).double(), ref)
    x = torch.randn(3, 6, D, dtype=torch.float64)
    lengths = torch.tensor([6, 4, 2])
    keep = torch.arange(6)[None] < lengths[:, None]  # (B, S) True = real token
    y_ref = ref(x, src_key_padding_mask=to_torch_mask(keep))
    y = ours(x, keep[:, None, None, :])
    assert torch.allclose(y[keep], y_ref[keep], atol=1e-10)
    y_causal = ours(x, is_causal=True)
    y_causal_ref = ref(x, src_mask=to_torch_mask(causal_mask(6)))
    assert torch.allclose(y_causal, y_causal_ref, atol=1e-10)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_block_equals_torch(norm_first):
    ref = nn.TransformerDecoderLayer(D, H, F, dropout=0.0, batch_first=True, norm_first=norm_first).double().eval()
    _randomise(ref)
    ours = load_from_torch_decoder_layer(DecoderBlock(D, H, F, norm_first=norm_first).double(), ref)
    x, mem = torch.randn(2, 5, D, dtype=torch.float64), torch.randn(2, 7, D, dtype=torch.float64)
    mem_keep = torch.tensor([[True] * 7, [True] * 3 + [False] * 4])
    y_ref = ref(x, mem, tgt_mask=to_torch_mask(causal_mask(5)), memory_key_padding_mask=to_torch_mask(mem_keep))
    y = ours(x, mem, memory_mask=mem_keep[:, None, None, :], is_causal=True)
    assert torch.allclose(y, y_ref, atol=1e-10)


@pytest.mark.ch06
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_decoder_stack_equals_nn_transformer(norm_first):
    ref = nn.Transformer(D, H, num_encoder_layers=2, num_decoder_layers=3, dim_feedforward=F, dropout=0.0,
                         batch_first=True, norm_first=norm_first).double().eval()
    _randomise(ref)
    enc = Encoder(2, D, H, F, norm_first=norm_first, final_norm=True).double()
    dec = Decoder(3, D, H, F, norm_first=norm_first, final_norm=True).double()
    load_from_torch_transformer(enc, dec, ref)
    src, tgt = torch.randn(2, 7, D, dtype=torch.float64), torch.randn(2, 5, D, dtype=torch.float64)
    src_keep = torch.tensor([[True] * 7, [True] * 5 + [False] * 2])
    y_ref = ref(src, tgt, tgt_mask=to_torch_mask(causal_mask(5)), src_key_padding_mask=to_torch_mask(src_keep),
                memory_key_padding_mask=to_torch_mask(src_keep))
    mem = enc(src, src_keep[:, None, None, :])
    y = dec(tgt, mem, memory_mask=src_keep[:, None, None, :], is_causal=True)
    assert torch.allclose(y, y_ref, atol=1e-9)


def test_residual_keeps_gradients_alive_through_depth():
    """x + f(x) passes the gradient through the identity path; a plain stack of sub-layers does not."""
    torch.manual_seed(0)
    blocks = [EncoderBlock(D, H, F, norm_first=True) for _ in range(24)]
    x = torch.randn(2, 4, D, requires_grad=True)
    y = x
    for b in blocks:
        y = b(y)
    y.sum().backward()
    with_residual = x.grad.norm().item()

    x2 = x.detach().clone().requires_grad_()
    y2 = x2
    for b in blocks:  # the same sub-layers, residual connections removed
        h = b.attn(b.norm1(y2))
        y2 = b.ffn(b.norm2(h))
    y2.sum().backward()
    without = x2.grad.norm().item()
    assert with_residual > 100 * without


def test_post_ln_output_is_normalised_pre_ln_is_not():
    x = torch.randn(2, 5, D) * 10
    post = EncoderBlock(D, H, F, norm_first=False)(x)
    pre = EncoderBlock(D, H, F, norm_first=True)(x)
    assert torch.allclose(post.std(-1, unbiased=False), torch.ones(2, 5), atol=1e-2)
    assert pre.std(-1).mean() > 3  # the residual stream keeps its scale
