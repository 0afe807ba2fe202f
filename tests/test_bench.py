"""The benchmark runs end to end on CPU (timings are printed, never asserted)."""
import pytest

from tfmcourse import bench
from tfmcourse.cli import main as cli_main


def test_bench_small_runs_and_prints_ratios(capsys):
    assert bench.main(["--small", "--steps", "1", "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    for row in ("tfmcourse GPT", "torch nn.TransformerEncoder GPT", "tfmcourse ViT", "torch nn.TransformerEncoder ViT",
                "eager/manual-attn"):
        assert row in out
    assert out.count("x\n") == 2 and out.count("manual (teaching) attention") == 2


def test_flops_accounting_matches_gpt2_small():
    gc, vc, _, _ = bench.sizes(small=False)
    # ~124M parameters: 6N per token plus attention (12 L d T), as in nanoGPT's MFU estimate
    assert 0.7e9 < bench.flops_per_item("gpt", gc, vc) < 1.0e9


def test_cli_lists_commands(capsys):
    assert cli_main(["--help"]) == 0
    assert "bench" in capsys.readouterr().out
    assert cli_main(["nonsense"]) == 2
