"""The benchmark runs end to end on CPU (timings are printed, never asserted), its statistics are right,
and its peers start as healthy as tfmcourse's models."""
import json
import math

import pytest
import torch

from tfmcourse import bench
from tfmcourse.bench.stats import Ratio, median_ci, paired_ratio
from tfmcourse.cli import main as cli_main


def test_bench_small_runs_and_prints_ratios(capsys, tmp_path, threads):
    args = ["--small", "--steps", "2", "--rounds", "2", "--warmup", "1", "--json", str(tmp_path / "b.json")]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    saved = json.loads((tmp_path / "b.json").read_text())
    assert saved["torch"] == torch.__version__ and saved["setup"]["gpt"]["n_layers"] == 4
    assert {(r["model"], r["mode"]) for r in saved["results"]} >= {("tfmcourse GPT", "eager"),
                                                                   ("tfmcourse ViT", "eager/manual-attn")}
    for row in ("tfmcourse GPT", "torch nn.TransformerEncoder GPT", "tfmcourse ViT", "torch nn.TransformerEncoder ViT",
                "eager/manual-attn", "2 measured steps in 2 interleaved rounds", "timing: process CPU time",
                "load average:", "loss@0"):
        assert row in out
    for family in ("GPT", "ViT"):
        assert f"tfmcourse {family} / torch nn.TransformerEncoder {family} [eager]:" in out
        assert f"tfmcourse {family}: written-out attention / fused attention step time:" in out
    assert "compiled" not in out.split("tfmcourse / peer throughput")[1]  # eager run: no cross-mode ratio
    assert {r["kind"] for r in saved["ratios"]} == {"peer", "manual"}
    assert torch.get_num_threads() == threads, "the bench restores the caller's thread count"


@pytest.fixture
def threads():
    return torch.get_num_threads()


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
        assert r.clock == "cpu" and len(r.times) == 3 and r.ci[0] <= r.ms / 1e3 <= r.ci[1]


def test_an_entry_that_fails_is_reported_and_the_others_measured():
    def broken():
        raise RuntimeError("compile failed\nlong traceback")

    group = bench.entries(TINY_GPT, TINY_VIT, ["eager"], ["gpt"], peers=False)[:1]
    group.append(bench.Entry("broken peer", "gpt", "eager", False, broken))
    failed = []
    results = bench.measure_group(group, TINY_GPT, TINY_VIT, (2, 4), torch.device("cpu"), steps=2, warmup=1,
                                  rounds=2, failed=failed)
    assert [r.entry.name for r in results] == ["tfmcourse GPT"]
    assert failed == ["broken peer [eager] not measured: RuntimeError: compile failed"]


@pytest.mark.parametrize("family", ["gpt", "vit"])
def test_peers_start_at_tfmcourse_loss(family):
    """Same initialisation scale, same batch: every entry's step-0 loss is within 10 % of tfmcourse's
    (PyTorch's default N(0, 1) embedding gave the nn.TransformerEncoder GPT a loss near 145)."""
    gc = bench.GPTConfig(vocab_size=512, block_size=32, n_layers=2, n_heads=2, d_model=64)
    vc = bench.ViTConfig(image_size=16, patch_size=4, n_classes=50, d_model=64, n_layers=2, n_heads=2)
    group = [e for e in bench.entries(gc, vc, ["eager"], [family], peers=True) if "manual" not in e.mode]
    runs = [bench._prepare(e, gc, vc, (4, 8), torch.device("cpu"), warmup=1, amp=False) for e in group]
    ours = runs[0].loss0
    assert ours == pytest.approx(math.log(512 if family == "gpt" else 50), rel=0.05)
    for run in runs[1:]:
        assert run.loss0 == pytest.approx(ours, rel=0.10), run.entry.name


def test_median_interval_and_ties():
    assert median_ci([3.0, 1.0, 2.0]) == (1.0, 3.0)  # under 6 samples: the whole range
    xs = [float(i) for i in range(1, 11)]
    assert median_ci(xs) == (2.0, 9.0)  # n = 10: x(2)..x(9), 97.9 % coverage
    assert median_ci([float(i) for i in range(1, 13)]) == (3.0, 10.0)  # n = 12: x(3)..x(10), 96.1 %
    r = paired_ratio([2.0, 2.2, 1.8, 2.0, 2.1, 1.9], [1.0, 1.1, 0.9, 1.0, 1.05, 0.95])
    assert r.value == pytest.approx(2.0) and not r.tie and r.verdict("faster", "slower") == "faster"
    assert Ratio(1.02, 0.97, 1.05).tie and "tie" in Ratio(1.02, 0.97, 1.05).verdict("faster", "slower")
    assert Ratio(0.9, 0.85, 0.95).verdict("faster", "slower") == "slower"
    with pytest.raises(ValueError):
        paired_ratio([1.0], [1.0, 2.0])


@pytest.mark.parametrize("mode", ["eager", "compiled"])
def test_every_entry_trains_under_bf16_autocast(mode):
    """The GPU recipe (bf16 autocast; compiled or not) on CPU: every entry and peer installed here eager,
    tfmcourse's models and PyTorch's peers compiled (compiling the Hugging Face / timm models on a CPU takes
    minutes; the bench reports a peer that fails instead of stopping)."""
    if mode == "compiled":
        pytest.importorskip("torch._inductor")
        torch._dynamo.reset()
    group = [e for e in bench.entries(TINY_GPT, TINY_VIT, [mode], ["gpt", "vit"], peers=True)
             if mode == "eager" or e.ours or e.name.startswith("torch ")]
    for family in ("gpt", "vit"):
        fam = [e for e in group if e.family == family]
        results = bench.measure_group(fam, TINY_GPT, TINY_VIT, (2, 4), torch.device("cpu"), steps=1, warmup=1,
                                      rounds=1, amp=True)
        assert all(r.ms > 0 for r in results)


@pytest.mark.parametrize("name, peak", [("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12),
                                        ("NVIDIA H200", 989e12), ("NVIDIA A100-SXM4-80GB", 312e12),
                                        ("NVIDIA L40", 181e12), ("NVIDIA L4", 121e12), ("NVIDIA L40S", 362e12),
                                        ("NVIDIA H100 NVL", 835e12), ("Some Future GPU", None),
                                        ("NVIDIA L40 something new", None)])
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


def test_gpu_names_of_the_table_are_exact():
    """A name matched by substring would give an L40 the L4's peak; every key is an exact name."""
    for name in bench.PEAK_BF16:
        assert bench.peak_bf16_flops(name) == bench.PEAK_BF16[name]
        assert bench.peak_bf16_flops(name + "X") is None


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
