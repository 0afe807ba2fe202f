"""Chapter 6: GPT and the encoder–decoder Transformer as whole models."""
import pytest
import torch

from tfmcourse import GPT, GPTConfig, Seq2SeqConfig, Transformer, param_groups

pytestmark = pytest.mark.ch06

RECIPES = {
    "gpt2": GPTConfig.gpt2(vocab_size=50, block_size=32, n_layers=2, n_heads=4, d_model=32),
    "llama": GPTConfig.llama(vocab_size=50, block_size=32, n_layers=2, n_heads=4, d_model=32),
    "sinusoidal-relu-post": GPTConfig(vocab_size=50, block_size=32, n_layers=2, n_heads=4, d_model=32,
                                      positions="sinusoidal", ffn="relu", tie_weights=False),
}


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_gpt_is_causal(recipe):
    model = GPT(RECIPES[recipe]).eval()
    idx = torch.randint(0, 50, (2, 12))
    logits, _ = model(idx)
    for t in (0, 5, 11):
        idx2 = idx.clone()
        idx2[:, t] = (idx2[:, t] + 1) % 50
        logits2, _ = model(idx2)
        assert torch.allclose(logits[:, :t], logits2[:, :t], atol=1e-5), f"changing token {t} changed the past"
        assert not torch.allclose(logits[:, t:], logits2[:, t:], atol=1e-5)


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_kv_cache_generation_equals_recompute(recipe):
    model = GPT(RECIPES[recipe]).eval()
    prompt = torch.randint(0, 50, (3, 5))
    fast = model.generate(prompt, 20, temperature=0, use_cache=True)
    slow = model.generate(prompt, 20, temperature=0, use_cache=False)
    assert fast.shape == (3, 25) and torch.equal(fast, slow)
    long = model.generate(prompt, 40, temperature=0, use_cache=True)  # runs past block_size=32
    assert torch.equal(long, model.generate(prompt, 40, temperature=0, use_cache=False))


def test_sampling_respects_top_k_and_generator():
    model = GPT(RECIPES["gpt2"]).eval()
    prompt = torch.zeros(2, 1, dtype=torch.long)
    a = model.generate(prompt, 10, top_k=1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, model.generate(prompt, 10, temperature=0))  # top-1 sampling is greedy
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(model.generate(prompt, 10, generator=g1), model.generate(prompt, 10, generator=g2))


def test_gpt_weight_tying_init_and_gradients_reach_every_parameter():
    model = GPT(RECIPES["gpt2"])
    assert model.lm_head.weight is model.tok_emb.weight
    proj_std = model.blocks[0].attn.proj.weight.std().item()
    assert proj_std < 0.02 * 0.75  # residual projections scaled by 1/sqrt(2 n_layers)
    idx = torch.randint(0, 50, (2, 16))
    _, loss = model(idx, idx)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_initial_loss_is_near_uniform():
    model = GPT(RECIPES["gpt2"])
    idx, targets = torch.randint(0, 50, (2, 4, 32))
    _, loss = model(idx, targets)
    assert abs(loss.item() - torch.log(torch.tensor(50.0)).item()) < 0.3


def test_ignore_index_targets():
    model = GPT(RECIPES["llama"])
    idx = torch.randint(0, 50, (2, 8))
    targets = idx.clone()
    targets[:, :4] = -100
    logits, loss = model(idx, targets)
    ref = torch.nn.functional.cross_entropy(logits[:, 4:].reshape(-1, 50), idx[:, 4:].reshape(-1))
    assert torch.allclose(loss, ref, atol=1e-6)


def test_weight_decay_only_on_matrices():
    model = GPT(RECIPES["gpt2"])
    decay, no_decay = param_groups(model, 0.1)
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    n_groups = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert n_groups == sum(p.numel() for p in model.parameters())  # tied weight counted once
    opt = model.configure_optimizers(lr=1e-3)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]


def test_make_optimizer_is_fused_and_matches_the_reference_adamw():
    from tfmcourse.optim import make_optimizer
    torch.manual_seed(0)
    fused_model = GPT(RECIPES["gpt2"])
    ref_model = GPT(RECIPES["gpt2"])
    ref_model.load_state_dict(fused_model.state_dict())
    fused = make_optimizer(fused_model, lr=1e-2, weight_decay=0.1)
    assert fused.defaults["fused"], "the CPU build of PyTorch has a fused AdamW; make_optimizer should use it"
    ref = torch.optim.AdamW(param_groups(ref_model, 0.1), lr=1e-2, betas=(0.9, 0.95), foreach=False)
    for step in range(3):  # the same gradients for both, so only the update rule can differ
        g = torch.Generator().manual_seed(step)
        for a, b in zip(fused_model.parameters(), ref_model.parameters()):
            a.grad = torch.randn(a.shape, generator=g)
            b.grad = a.grad.clone()
        fused.step()
        ref.step()
    for (name, a), b in zip(fused_model.named_parameters(), ref_model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("recipe", ["gpt2", "llama"])
def test_gpt_overfits_one_batch(recipe):
    torch.manual_seed(0)
    model = GPT(RECIPES[recipe])
    idx = torch.randint(0, 50, (4, 16))
    opt = model.configure_optimizers(lr=3e-3, weight_decay=0.0)
    for _ in range(150):
        _, loss = model(idx[:, :-1], idx[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


def _seq2seq(**kw):
    return Transformer(Seq2SeqConfig(src_vocab_size=14, tgt_vocab_size=14, d_model=32, n_heads=4,
                                     n_encoder_layers=2, n_decoder_layers=2, d_ff=64, dropout=0.0, **kw))


def test_seq2seq_overfits_one_batch_and_decodes_it():
    torch.manual_seed(0)
    model = _seq2seq()
    src = torch.randint(3, 14, (4, 6))
    tgt = src.flip(1)  # learn to reverse
    bos = torch.ones(4, 1, dtype=torch.long)
    tgt_in, targets = torch.cat([bos, tgt], 1), torch.cat([tgt, torch.full((4, 1), 2)], 1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(200):
        _, loss = model(src, tgt_in, targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    model.eval()
    out = model.generate(src, 10, bos_id=1, eos_id=2)
    assert torch.equal(out[:, :6], tgt) and torch.all(out[:, 6] == 2)


def test_seq2seq_decoder_is_causal_and_padding_is_ignored():
    model = _seq2seq(norm_first=False).eval()
    src = torch.randint(3, 14, (2, 5))
    tgt_in = torch.randint(3, 14, (2, 6))
    logits, _ = model(src, tgt_in)
    tgt2 = tgt_in.clone()
    tgt2[:, 4] = 3 if tgt2[0, 4] != 3 else 4
    assert torch.allclose(model(src, tgt2)[0][:, :4], logits[:, :4], atol=1e-5)
    # appending padding to the source changes nothing
    src_padded = torch.cat([src, torch.zeros(2, 3, dtype=torch.long)], 1)
    assert torch.allclose(model(src_padded, tgt_in)[0], logits, atol=1e-5)


@pytest.mark.parametrize("bad, match", [
    (dict(d_model=30, n_heads=4), "divisible"),
    (dict(positions="onehot"), "positions"),
    (dict(norm="batchnorm"), "norm"),
    (dict(ffn="tanh"), "ffn"),
    (dict(dropout=1.0), "dropout"),
    (dict(n_layers=0), "n_layers"),
])
def test_gpt_config_rejects_bad_values(bad, match):
    with pytest.raises(ValueError, match=match):
        GPTConfig(**{**dict(vocab_size=10, block_size=8, n_layers=1, n_heads=2, d_model=8), **bad})


def test_sequence_longer_than_context_is_a_clear_error():
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layers=1, n_heads=2, d_model=8))
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible"):
        Seq2SeqConfig(10, 10, d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="max_len"):
        _seq2seq(max_len=4)(torch.ones(1, 5, dtype=torch.long), torch.ones(1, 2, dtype=torch.long))
