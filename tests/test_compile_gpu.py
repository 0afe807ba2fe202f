"""GPU-readiness: graph-break-free compilation (checked on CPU too) and CUDA-only checks (marked `gpu`)."""
import pytest
import torch

from tfmcourse import GPT, GPTConfig, ViT, ViTConfig

SMALL_GPT = GPTConfig(vocab_size=64, block_size=32, n_layers=2, n_heads=4, d_model=64)
SMALL_VIT = ViTConfig(image_size=16, patch_size=4, in_chans=3, n_classes=10, d_model=64, n_layers=2, n_heads=4)


def _gpt_step(model, device, dtype=None):
    idx = torch.randint(0, 64, (4, 32), device=device)
    with torch.autocast(device_type=device, dtype=dtype, enabled=dtype is not None):
        logits, loss = model(idx, idx)
    loss.backward()
    return logits, loss


def _vit_step(model, device, dtype=None):
    x, y = torch.randn(4, 3, 16, 16, device=device), torch.randint(0, 10, (4,), device=device)
    with torch.autocast(device_type=device, dtype=dtype, enabled=dtype is not None):
        logits, loss = model(x, y)
    loss.backward()
    return logits, loss


@pytest.mark.ch06
@pytest.mark.parametrize("recipe", ["gpt2", "llama"])
def test_gpt_traces_without_graph_breaks(recipe):
    torch._dynamo.reset()
    cfg = getattr(GPTConfig, recipe)(vocab_size=64, block_size=32, n_layers=2, n_heads=4, d_model=64)
    model = torch.compile(GPT(cfg), backend="eager", fullgraph=True)  # fullgraph: a graph break raises
    _, loss = _gpt_step(model, "cpu")
    assert torch.isfinite(loss)


@pytest.mark.ch07
def test_vit_traces_without_graph_breaks():
    torch._dynamo.reset()
    model = torch.compile(ViT(SMALL_VIT), backend="eager", fullgraph=True)
    _, loss = _vit_step(model, "cpu")
    assert torch.isfinite(loss)


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["gpt", "vit"])
def test_bf16_autocast_forward_backward(kind):
    model = (GPT(SMALL_GPT) if kind == "gpt" else ViT(SMALL_VIT)).cuda()
    step = _gpt_step if kind == "gpt" else _vit_step
    logits, loss = step(model, "cuda", torch.bfloat16)
    assert logits.dtype == torch.bfloat16 and torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.gpu
def test_fused_sdpa_flash_path_is_taken():
    from torch.nn.attention import SDPBackend, sdpa_kernel
    model = GPT(SMALL_GPT).cuda()
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):  # any other attention path would raise here
        logits, loss = _gpt_step(model, "cuda", torch.bfloat16)
    assert torch.isfinite(loss)


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["gpt", "vit"])
def test_torch_compile_fullgraph_on_cuda(kind):
    torch._dynamo.reset()
    model = (GPT(SMALL_GPT) if kind == "gpt" else ViT(SMALL_VIT)).cuda()
    compiled = torch.compile(model, fullgraph=True)
    step = _gpt_step if kind == "gpt" else _vit_step
    torch.manual_seed(0)
    _, loss_c = step(compiled, "cuda", torch.bfloat16)
    torch.manual_seed(0)
    _, loss_e = step(model, "cuda", torch.bfloat16)
    assert torch.isfinite(loss_c) and abs(loss_c.item() - loss_e.item()) < 5e-2


@pytest.mark.ch06
@pytest.mark.parametrize("kind", ["gpt-gpt2", "gpt-llama", "vit"])
def test_training_forward_gives_sdpa_what_the_flash_kernel_needs(kind, monkeypatch):
    """On CUDA the flash kernel runs only without a mask tensor, with q, k, v of one 16-bit dtype and a
    contiguous last dimension. Recorded on CPU under bf16 autocast: every SDPA call of a training step."""
    import tfmcourse.attention as attention_module

    calls = []
    real = attention_module.F.scaled_dot_product_attention

    def recording(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, **kw):
        calls.append(dict(mask=attn_mask is not None, causal=is_causal, dtypes={q.dtype, k.dtype, v.dtype},
                          strides=[t.stride(-1) for t in (q, k, v)], head_dim=q.size(-1)))
        return real(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, **kw)

    monkeypatch.setattr(attention_module.F, "scaled_dot_product_attention", recording)
    if kind == "vit":
        _vit_step(ViT(SMALL_VIT), "cpu", torch.bfloat16)
    else:
        recipe = getattr(GPTConfig, kind.split("-")[1])
        _gpt_step(GPT(recipe(vocab_size=64, block_size=32, n_layers=2, n_heads=4, d_model=64)), "cpu", torch.bfloat16)
    assert len(calls) == 2, "one fused attention call per layer"
    for c in calls:
        assert not c["mask"] and c["causal"] == kind.startswith("gpt"), c
        assert c["dtypes"] == {torch.bfloat16} and c["strides"] == [1, 1, 1] and c["head_dim"] % 8 == 0, c
