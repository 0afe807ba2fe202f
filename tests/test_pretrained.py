"""Pretrained interop: RoPE options, grouped-query attention, tanh GELU, norm eps, strict tied loading, and
Hugging Face GPT-2 / LLaMA and timm ViT checkpoints loaded with exact parity.

The parity tests build small random models with ``transformers`` / ``timm``, save them to a folder as a
user's downloaded checkpoint would be, load that folder into tfmcourse and compare logits (fp32, 1e-5)
and 20 greedy tokens. They skip when the library is not installed; everything else runs without them.
"""
import json
import math

import pytest
import torch
import torch.nn.functional as F

from tfmcourse import GPT, GPTConfig, MultiHeadAttention, ViT
from tfmcourse.embedding import RotaryEmbedding
from tfmcourse.ffn import FeedForward
from tfmcourse.multihead import KVCache
from tfmcourse.pretrained import HFTokenizer, gpt_from_hf, read_checkpoint_dir
from tfmcourse.train import cli_sample

TOL = dict(atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------------ RoPE
def rope_formula(x: torch.Tensor, pos: torch.Tensor, base: float, interleaved: bool) -> torch.Tensor:
    """Rotate each pair by pos * base^(-2i/hs), pair by pair in float64, as written in the papers."""
    hs = x.size(-1)
    out = x.double().clone()
    for i in range(hs // 2):
        a, b = (2 * i, 2 * i + 1) if interleaved else (i, i + hs // 2)
        theta = pos.double() * base ** (-2 * i / hs)  # broadcast over (…, T)
        xa, xb = x[..., a].double(), x[..., b].double()
        out[..., a] = xa * torch.cos(theta) - xb * torch.sin(theta)
        out[..., b] = xa * torch.sin(theta) + xb * torch.cos(theta)
    return out.float()


@pytest.mark.parametrize("interleaved", [False, True])
def test_rope_matches_the_formula_with_offset_and_explicit_positions(interleaved):
    torch.manual_seed(0)
    rope = RotaryEmbedding(8, 64, base=500.0, interleaved=interleaved)
    q, k = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 8)
    rq, rk = rope(q, k, offset=7)
    pos = torch.arange(7, 12)
    torch.testing.assert_close(rq, rope_formula(q, pos, 500.0, interleaved), **TOL)
    torch.testing.assert_close(rk, rope_formula(k, pos, 500.0, interleaved), **TOL)
    # the same positions given explicitly, then different positions for each sequence of the batch
    torch.testing.assert_close(rope(q, k, positions=pos)[0], rq, atol=0, rtol=0)
    per_row = torch.tensor([[0, 1, 2, 0, 1], [30, 31, 32, 33, 34]])  # a packed row, a row further on
    got = rope.at(per_row)(q, k, offset=99)[0]  # bound positions win over the offset
    torch.testing.assert_close(got, rope_formula(q, per_row[:, None], 500.0, interleaved), **TOL)


def test_rope_layouts_differ_and_bad_positions_are_refused():
    q = torch.randn(1, 1, 4, 8)
    half, inter = RotaryEmbedding(8, 16), RotaryEmbedding(8, 16, interleaved=True)
    assert not torch.allclose(half(q, q, offset=3)[0], inter(q, q, offset=3)[0])
    with pytest.raises(ValueError, match="positions"):
        half(q, q, positions=torch.tensor([0, 1, 2, 16]))
    with pytest.raises(ValueError, match="shape"):
        half(q, q, positions=torch.arange(3))


def test_gpt_positions_default_shift_and_packing():
    torch.manual_seed(0)
    idx = torch.randint(0, 50, (2, 6))
    for positions in ("learned", "rope"):
        model = GPT(GPTConfig(vocab_size=50, block_size=32, n_layers=2, n_heads=2, d_model=16,
                              positions=positions)).eval()
        torch.testing.assert_close(model(idx, positions=torch.arange(6))[0], model(idx)[0], atol=0, rtol=0)
        # per-sequence positions: each row is computed as if it stood alone at those positions
        pos = torch.tensor([[0, 1, 2, 3, 4, 5], [9, 10, 11, 12, 13, 14]])
        both = model(idx, positions=pos)[0]
        torch.testing.assert_close(both[1:], model(idx[1:], positions=pos[1])[0], **TOL)
        with pytest.raises(ValueError, match="block_size"):
            model(idx, positions=torch.arange(27, 33))
    # RoPE sees only relative positions: shifting every position changes nothing
    torch.testing.assert_close(model(idx, positions=torch.arange(10, 16))[0], model(idx)[0], **TOL)


# ------------------------------------------------------------------------------------------ GQA
def test_gqa_equals_mha_with_repeated_key_value_heads():
    torch.manual_seed(0)
    C, H, KV, hs = 32, 8, 2, 4
    gqa = MultiHeadAttention(C, H, n_kv_heads=KV, bias=True)
    assert gqa.qkv.weight.shape == (C + 2 * KV * hs, C)  # the parameters a GQA checkpoint holds
    mha = MultiHeadAttention(C, H, bias=True)
    with torch.no_grad():
        w, b = gqa.qkv.weight, gqa.qkv.bias
        rep = lambda t: t.unflatten(0, (KV, hs)).repeat_interleave(H // KV, 0).flatten(0, 1)  # noqa: E731
        wq, wk, wv = w.split([C, KV * hs, KV * hs])
        bq, bk, bv = b.split([C, KV * hs, KV * hs])
        mha.qkv.weight.copy_(torch.cat([wq, rep(wk), rep(wv)]))
        mha.qkv.bias.copy_(torch.cat([bq, rep(bk), rep(bv)]))
        mha.proj.load_state_dict(gqa.proj.state_dict())
    x = torch.randn(2, 7, C)
    rope = RotaryEmbedding(hs, 16)
    torch.testing.assert_close(gqa(x, is_causal=True, rope=rope), mha(x, is_causal=True, rope=rope), **TOL)
    cache = KVCache()  # one token at a time through the cache gives the same outputs
    steps = torch.cat([gqa(x[:, t:t + 1], is_causal=True, cache=cache, rope=rope) for t in range(7)], 1)
    torch.testing.assert_close(steps, gqa(x, is_causal=True, rope=rope), **TOL)
    with pytest.raises(ValueError, match="multiple"):
        MultiHeadAttention(C, H, n_kv_heads=3)


def test_gqa_gpt_generates_the_same_with_and_without_cache():
    torch.manual_seed(0)
    c = GPTConfig.llama(vocab_size=40, block_size=32, n_layers=2, n_heads=4, n_kv_heads=1, d_model=32)
    model = GPT(c).eval()
    full = GPT(GPTConfig.llama(vocab_size=40, block_size=32, n_layers=2, n_heads=4, d_model=32))
    assert model.num_params() < full.num_params()
    idx = torch.randint(0, 40, (2, 3))
    assert torch.equal(model.generate(idx, 12, temperature=0), model.generate(idx, 12, temperature=0, use_cache=False))
    with pytest.raises(ValueError, match="n_kv_heads"):
        GPTConfig(n_heads=4, d_model=32, n_kv_heads=3)


# ------------------------------------------------------------------------------------------ GELU, eps, tying
def test_gelu_tanh_is_gpt2s_activation():
    ffn = FeedForward(4, 8, activation="gelu_tanh")
    x = torch.linspace(-4, 4, 101)
    expected = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    torch.testing.assert_close(ffn.act(x), expected, **TOL)
    assert not torch.allclose(ffn.act(x), F.gelu(x), atol=1e-5)  # not the exact GELU


@pytest.mark.parametrize("norm", ["layernorm", "rmsnorm"])
def test_norm_eps_reaches_every_norm(norm):
    model = GPT(GPTConfig(vocab_size=16, block_size=8, n_layers=2, n_heads=2, d_model=8, norm=norm, norm_eps=1e-6))
    eps = [m.eps for m in model.modules() if hasattr(m, "eps") and isinstance(m, torch.nn.Module)]
    assert len(eps) == 2 * 2 + 1 and set(eps) == {1e-6}


def test_tied_weights_load_strictly():
    c = GPTConfig(vocab_size=16, block_size=8, n_layers=1, n_heads=2, d_model=8)
    src, dst = GPT(c), GPT(c)
    sd = {k: v.clone() for k, v in src.state_dict().items()}
    sd["lm_head.weight"] = sd["lm_head.weight"] + 1.0  # a checkpoint whose head and embedding differ
    with pytest.raises(ValueError, match="tie_weights"):
        dst.load_state_dict(sd)
    del sd["lm_head.weight"]  # one copy of a tied matrix is enough
    dst.load_state_dict(sd)
    assert torch.equal(dst.lm_head.weight, src.tok_emb.weight)
    untied = GPT(GPTConfig(vocab_size=16, block_size=8, n_layers=1, n_heads=2, d_model=8, tie_weights=False))
    sd["lm_head.weight"] = src.tok_emb.weight + 1.0
    untied.load_state_dict(sd)
    assert not torch.equal(untied.lm_head.weight, untied.tok_emb.weight)


# ------------------------------------------------------------------------------------------ without libraries
def as_hf_gpt2(model: GPT) -> dict[str, torch.Tensor]:
    """tfmcourse GPT -> Hugging Face GPT-2 names and Conv1D layout, written out independently."""
    sd = {"transformer.wte.weight": model.tok_emb.weight, "transformer.wpe.weight": model.pos_emb.weight,
          "transformer.ln_f.weight": model.norm.weight, "transformer.ln_f.bias": model.norm.bias}
    for i, b in enumerate(model.blocks):
        p = f"transformer.h.{i}."
        for name, lin in (("attn.c_attn", b.attn.qkv), ("attn.c_proj", b.attn.proj), ("mlp.c_fc", b.ffn.fc1),
                          ("mlp.c_proj", b.ffn.fc2)):
            sd[p + name + ".weight"], sd[p + name + ".bias"] = lin.weight.t().contiguous(), lin.bias
        for name, n in (("ln_1", b.norm1), ("ln_2", b.norm2)):
            sd[p + name + ".weight"], sd[p + name + ".bias"] = n.weight, n.bias
        sd[p + "attn.bias"] = torch.ones(1, 1, 8, 8, dtype=torch.bool)  # old checkpoints' mask buffer
    return {k: v.detach().clone() for k, v in sd.items()}


def test_gpt2_layout_round_trips_from_a_bin_folder_without_libraries(tmp_path):
    torch.manual_seed(0)
    c = GPTConfig.gpt2(vocab_size=40, block_size=8, n_layers=2, n_heads=2, d_model=16, ffn="gelu_tanh")
    model = GPT(c).eval()
    (tmp_path / "config.json").write_text(json.dumps(
        dict(model_type="gpt2", vocab_size=40, n_positions=8, n_layer=2, n_head=2, n_embd=16,
             activation_function="gelu_new")))
    torch.save(as_hf_gpt2(model), tmp_path / "pytorch_model.bin")
    loaded = GPT.from_hf(tmp_path).eval()
    idx = torch.randint(0, 40, (2, 8))
    torch.testing.assert_close(loaded(idx)[0], model(idx)[0], atol=0, rtol=0)
    assert loaded.config.ffn == "gelu_tanh" and loaded.config.tie_weights
    # a bare state dict: sizes from the shapes, 64-dim heads unless told otherwise
    again = gpt_from_hf(as_hf_gpt2(model), n_heads=2, ffn="gelu_tanh").eval()
    torch.testing.assert_close(again(idx)[0], model(idx)[0], atol=0, rtol=0)


def test_sharded_folder_and_refusals(tmp_path):
    torch.manual_seed(0)
    model = GPT(GPTConfig.gpt2(vocab_size=40, block_size=8, n_layers=2, n_heads=2, d_model=16, ffn="gelu_tanh"))
    sd = as_hf_gpt2(model)
    half = sorted(sd)[: len(sd) // 2]
    torch.save({k: sd[k] for k in half}, tmp_path / "part1.bin")
    torch.save({k: v for k, v in sd.items() if k not in half}, tmp_path / "part2.bin")
    index = {"weight_map": {k: ("part1.bin" if k in half else "part2.bin") for k in sd}}
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    config = dict(model_type="gpt2", vocab_size=40, n_positions=8, n_layer=2, n_head=2, n_embd=16)
    (tmp_path / "config.json").write_text(json.dumps(config))
    _, read = read_checkpoint_dir(tmp_path)
    assert read.keys() == sd.keys()
    GPT.from_hf(tmp_path)
    with pytest.raises(ValueError, match="lm_head"):  # tied in the config, but a different head in the file
        gpt_from_hf((config, {**sd, "lm_head.weight": sd["transformer.wte.weight"] + 1}))
    with pytest.raises(ValueError, match="no place"):
        gpt_from_hf((config, {**sd, "transformer.h.0.attn.extra": torch.zeros(1)}))
    with pytest.raises(ValueError, match="rope scaling"):
        gpt_from_hf(({"model_type": "llama", "rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, {}))
    with pytest.raises(FileNotFoundError, match="config.json"):
        GPT.from_hf(tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------ with transformers
def greedy_parity(hf_model, ours: GPT, vocab: int) -> None:
    """Logits within 1e-5, and the same 20 greedy tokens (ours with and without the KV cache)."""
    from transformers import GenerationConfig
    torch.manual_seed(1)
    idx = torch.randint(0, vocab, (3, 12))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx)[0], hf_model(idx).logits, **TOL)
    prompt = idx[:, :4]
    theirs = hf_model.generate(prompt, generation_config=GenerationConfig(max_new_tokens=20, do_sample=False))
    assert torch.equal(ours.generate(prompt, 20, temperature=0), theirs)
    assert torch.equal(ours.generate(prompt, 20, temperature=0, use_cache=False), theirs)


@pytest.mark.parametrize("activation", ["gelu_new", "gelu", "gelu_pytorch_tanh"])
def test_hf_gpt2_folder_loads_with_exact_parity(tmp_path, activation):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("safetensors")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=96, n_positions=40, n_embd=32, n_layer=2, n_head=4,
                                  activation_function=activation, bos_token_id=None, eos_token_id=None)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    hf.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    ours = GPT.from_hf(tmp_path).eval()
    assert ours.config.ffn == ("gelu" if activation == "gelu" else "gelu_tanh")
    greedy_parity(hf, ours, 96)


@pytest.mark.parametrize("tied", [False, True])
def test_hf_llama_with_gqa_loads_with_exact_parity(tmp_path, tied):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("safetensors")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                   num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=64,
                                   rms_norm_eps=1e-6, rope_theta=500.0, tie_word_embeddings=tied,
                                   bos_token_id=None, eos_token_id=None, pad_token_id=None)
    hf = transformers.LlamaForCausalLM(cfg).eval()
    hf.save_pretrained(tmp_path)
    ours = GPT.from_hf(tmp_path).eval()
    c = ours.config
    assert (c.n_kv_heads, c.norm_eps, c.rope_base, c.tie_weights) == (2, 1e-6, 500.0, tied)
    greedy_parity(hf, ours, 96)
    # the same weights from the model object and from a bare state dict (+ the head count)
    torch.testing.assert_close(GPT.from_hf(hf).lm_head.weight, ours.lm_head.weight, atol=0, rtol=0)
    bare = GPT.from_hf(hf.state_dict(), n_heads=8, norm_eps=1e-6, rope_base=500.0, block_size=64).eval()
    idx = torch.randint(0, 96, (1, 9))
    torch.testing.assert_close(bare(idx)[0], ours(idx)[0], atol=0, rtol=0)


def byte_tokenizer(folder) -> None:
    """A byte-level BPE tokenizer (GPT-2's pre-tokenizer and decoder) with the 256 byte tokens and no merges,
    saved as ``folder/tokenizer.json``."""
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers.pre_tokenizers import ByteLevel
    vocab = {ch: i for i, ch in enumerate(sorted(ByteLevel.alphabet()))}
    tok = tokenizers.Tokenizer(tokenizers.models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    tok.save(str(folder / "tokenizer.json"))


def test_sample_cli_runs_a_hf_folder_on_the_course_gpt(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("safetensors")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=256, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                                  bos_token_id=None, eos_token_id=None)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    hf.save_pretrained(tmp_path)
    byte_tokenizer(tmp_path)
    tok = HFTokenizer(tmp_path)
    assert tok.decode(tok.encode("Hello, world")) == "Hello, world"
    assert cli_sample.main(["--hf", str(tmp_path), "--prompt", "The", "--max-new-tokens", "12", "--temperature", "0",
                            "--device", "cpu"]) == 0
    out = capsys.readouterr().out.rstrip("\n")
    from transformers import GenerationConfig
    ids = torch.tensor([tok.encode("The")])
    expected = hf.generate(ids, generation_config=GenerationConfig(max_new_tokens=12, do_sample=False))
    assert out == "The" + tok.decode(expected[0, ids.size(1):].tolist())


def test_sample_cli_explains_a_folder_without_weights(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    assert cli_sample.main(["--hf", str(tmp_path), "--prompt", "x"]) == 1
    assert "has none of model.safetensors" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ with timm
@pytest.mark.parametrize("variant", [dict(), dict(class_token=False, global_pool="avg", fc_norm=False)])
def test_timm_vit_loads_with_exact_parity(tmp_path, variant):
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    theirs = timm.create_model("vit_base_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=64,
                               depth=2, num_heads=4, num_classes=10, **variant).eval()
    x = torch.randn(3, 3, 32, 32)
    ours = ViT.from_timm(theirs).eval()
    assert ours.config.pool == ("mean" if variant else "cls")
    torch.testing.assert_close(ours(x)[0], theirs(x), **TOL)
    from timm.models import save_for_hf
    save_for_hf(theirs, tmp_path)  # config.json (with model_args) + weights, as on a model hub
    torch.testing.assert_close(ViT.from_timm(tmp_path).eval()(x)[0], theirs(x), **TOL)


def test_timm_variants_it_cannot_compute_are_refused():
    timm = pytest.importorskip("timm")
    theirs = timm.create_model("vit_base_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=64,
                               depth=1, num_heads=4, num_classes=10, global_pool="avg")  # fc_norm after pooling
    with pytest.raises(ValueError, match="fc_norm"):
        ViT.from_timm(theirs)
