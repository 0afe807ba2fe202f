"""Chapter 1: embeddings and positional encodings."""
import math

import pytest
import torch

from tfmcourse import (GPT, GPTConfig, LearnedPositionalEmbedding, RotaryEmbedding, SinusoidalPositionalEncoding,
                       TokenEmbedding, apply_rotary, sinusoidal_encoding)

pytestmark = pytest.mark.ch01


def test_sinusoidal_matches_formula():
    P, d = 50, 16
    pe = sinusoidal_encoding(P, d)
    assert pe.shape == (P, d)
    for pos in (0, 1, 7, 49):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-5)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-5)


def test_sinusoidal_module_offset_and_odd_width():
    mod = SinusoidalPositionalEncoding(32, 8)
    assert torch.equal(mod(5, offset=3), sinusoidal_encoding(32, 8)[3:8])
    with pytest.raises(ValueError, match="even"):
        sinusoidal_encoding(4, 7)


def test_token_embedding_is_a_row_lookup_and_scales():
    emb = TokenEmbedding(10, 4, scale=True)
    idx = torch.tensor([[3, 3, 9]])
    out = emb(idx)
    assert out.shape == (1, 3, 4)
    assert torch.allclose(out[0, 0], emb.weight[3] * 2.0)  # sqrt(4) = 2
    assert torch.equal(out[0, 0], out[0, 1])


def test_learned_positions_are_trained_rows():
    pos = LearnedPositionalEmbedding(16, 8)
    assert torch.equal(pos(4, offset=2), pos.weight[2:6])
    pos(4).sum().backward()
    assert pos.weight.grad[:4].abs().sum() > 0 and pos.weight.grad[4:].abs().sum() == 0


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    hs = 16
    rope = RotaryEmbedding(hs, 64)
    q, k = torch.randn(hs), torch.randn(hs)

    def score(m, n):
        qm = apply_rotary(q.view(1, 1, 1, hs), rope.cos[m:m + 1], rope.sin[m:m + 1])
        kn = apply_rotary(k.view(1, 1, 1, hs), rope.cos[n:n + 1], rope.sin[n:n + 1])
        return (qm * kn).sum().item()

    for shift in (1, 5, 20):
        assert score(3, 1) == pytest.approx(score(3 + shift, 1 + shift), abs=1e-4)
        assert score(10, 10) == pytest.approx(score(10 + shift, 10 + shift), abs=1e-4)
    assert abs(score(3, 1) - score(3, 2)) > 1e-3  # it does depend on the offset


def test_rope_preserves_norm_and_is_identity_at_position_zero():
    rope = RotaryEmbedding(8, 16)
    x = torch.randn(2, 3, 16, 8)
    q, k = rope(x, x)
    assert torch.allclose(q.norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    assert torch.allclose(q[:, :, 0], x[:, :, 0])
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(7, 4)


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rope", "none"])
def test_gpt_runs_with_every_position_kind(positions):
    cfg = GPTConfig(vocab_size=20, block_size=16, n_layers=1, n_heads=2, d_model=16, positions=positions)
    logits, _ = GPT(cfg)(torch.randint(0, 20, (2, 10)))
    assert logits.shape == (2, 10, 20)
