"""The benchmark runs end to end on CPU (timings are printed, never asserted)."""
import json

import pytest
import torch

from tfmcourse import bench
from tfmcourse.cli import main as cli_main


def test_bench_small_runs_and_prints_ratios(capsys, tmp_path):
    args = ["--small", "--steps", "2", "--rounds", "2", "--warmup", "1", "--json", str(tmp_path / "b.json")]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    saved = json.loads((tmp_path / "b.json").read_text())
    assert saved["torch"] == torch.__version__ and saved["setup"]["gpt"]["n_layers"] == 4
    assert {(r["model"], r["mode"]) for r in saved["results"]} >= {("tfmcourse GPT", "eager"),
                                                                   ("tfmcourse ViT", "eager/manual-attn")}
    for row in ("tfmcourse GPT", "torch nn.TransformerEncoder GPT", "tfmcourse ViT", "torch nn.TransformerEncoder ViT",
                "eager/manual-attn", "2 measured steps in 2 interleaved rounds"):
        assert row in out
    for family in ("GPT", "ViT"):
        assert f"tfmcourse {family} [eager] / torch nn.TransformerEncoder {family} [eager]:" in out
        assert f"tfmcourse {family}: manual (teaching) attention costs" in out


TINY_GPT = bench.GPTConfig(vocab_size=64, block_size=16, n_layers=1, n_heads=2, d_model=32)
TINY_VIT = bench.ViTConfig(image_size=16, patch_size=8, n_classes=10, d_model=32, n_layers=1, n_heads=2)


@pytest.mark.parametrize("family", ["gpt", "vit"])
def test_interleaved_rounds_time_every_entry(family):
    group = bench.entries(TINY_GPT, TINY_VIT, ["eager"], [family], peers=True)
    results = bench.measure_group(group, TINY_GPT, TINY_VIT, (2, 4), torch.device("cpu"), steps=6, warmup=1,
                                  rounds=3)
    assert [r.entry for r in results] == group
    n_items = 2 * 16 if family == "gpt" else 4
    for r in results:
        assert r.ms > 0 and r.items_per_s == pytest.approx(n_items / (r.ms / 1e3)) and r.spread >= 0
        assert r.mfu is None and r.peak_mem_gb is None  # no CUDA: no peak FLOPs or memory to report


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_every_entry_trains_under_bf16_autocast(mode):
    """The GPU recipe (bf16 autocast; compiled or not) on CPU, for every entry and peer installed here."""
    if mode == "compiled":
        pytest.importorskip("torch._inductor")
        torch._dynamo.reset()
    group = bench.entries(TINY_GPT, TINY_VIT, [mode], ["gpt", "vit"], peers=True)
    for family in ("gpt", "vit"):
        fam = [e for e in group if e.family == family]
        results = bench.measure_group(fam, TINY_GPT, TINY_VIT, (2, 4), torch.device("cpu"), steps=1, warmup=1,
                                      rounds=1, amp=True)
        assert all(r.ms > 0 for r in results)


@pytest.mark.parametrize("name, peak", [("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12),
                                        ("NVIDIA H200", 989e12), ("NVIDIA A100-SXM4-80GB", 312e12),
                                        ("Some Future GPU", None)])
def test_peak_flops_lookup(name, peak):
    assert bench.peak_bf16_flops(name) == peak


def test_flops_accounting_matches_gpt2_small():
    gc, vc, _, _ = bench.sizes(small=False)
    # ~124M parameters: 6N per token plus attention (12 L d T), as in nanoGPT's MFU estimate
    assert 0.7e9 < bench.flops_per_item("gpt", gc, vc) < 1.0e9


def test_cli_lists_commands(capsys):
    assert cli_main(["--help"]) == 0
    assert "bench" in capsys.readouterr().out
    assert cli_main(["nonsense"]) == 2


@pytest.mark.parametrize("module, peer", [("transformers", "HFGPT2"), ("timm", "TimmViT")])
def test_optional_peers_build_and_train_when_installed(module, peer):
    pytest.importorskip(module)
    model = getattr(bench.peers, peer)(TINY_GPT if peer == "HFGPT2" else TINY_VIT)
    x = torch.randint(0, 64, (2, 16)) if peer == "HFGPT2" else torch.randn(2, 3, 16, 16)
    y = torch.randint(0, 64, (2, 16)) if peer == "HFGPT2" else torch.randint(0, 10, (2,))
    logits, loss = model(x, y)
    loss.backward()
    assert torch.isfinite(loss) and logits.shape[-1] == (64 if peer == "HFGPT2" else 10)
    assert sum(p.numel() for p in model.parameters()) > 0
