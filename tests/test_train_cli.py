"""Chapter 6: `tfmcourse train | sample | eval` end to end, with tiny step counts, and their errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tfmcourse.train import cli, cli_eval, cli_sample, load_checkpoint, read_metrics

pytestmark = pytest.mark.ch06

TINY_GPT = ["--max-chars", "40000", "--n-layers", "1", "--n-heads", "2", "--d-model", "32", "--block-size", "16",
            "--batch-size", "8", "--eval-batches", "2", "--no-progress"]


def assert_one_line_error(capsys, rc: int, *fragments: str) -> str:
    err = capsys.readouterr().err.strip()
    assert rc != 0
    assert "\n" not in err and "Traceback" not in err, err
    for f in fragments:
        assert f in err, err
    return err


def test_train_vit_digits_writes_checkpoint_log_and_plot_then_eval(tmp_path, capsys):
    out = tmp_path / "vit"
    rc = cli.main(["vit", "--data", "digits", "--steps", "12", "--eval-every", "6", "--log-every", "3",
                   "--out", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "accuracy" in text and "wrote" in text
    assert (out / "metrics.png").read_bytes()[:4] == b"\x89PNG"
    records = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in records if r["split"] == "train"] == [3, 6, 9, 12]
    assert [r["step"] for r in records if r["split"] == "val"] == [6, 12]
    ckpt = load_checkpoint(out / "ckpt.pt")
    assert ckpt["step"] == 12 and ckpt["meta"]["kind"] == "vit"

    assert cli_eval.main(["--ckpt", str(out / "ckpt.pt")]) == 0
    table = capsys.readouterr().out
    assert "accuracy" in table and "val_loss" in table
    assert cli_eval.main(["--ckpt", str(out / "ckpt.pt"), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert 0 <= scores["accuracy"] <= 1 and scores["step"] == 12


def test_train_gpt_sample_eval_and_resume(tmp_path, capsys):
    out = tmp_path / "gpt"
    assert cli.main(["gpt", "--steps", "8", "--eval-every", "4", "--out", str(out), *TINY_GPT]) == 0
    text = capsys.readouterr().out
    assert "unigram baseline" in text and "sample:" in text
    assert {p.name for p in out.iterdir()} >= {"ckpt.pt", "metrics.jsonl", "metrics.png"}

    assert cli_sample.main(["--ckpt", str(out / "ckpt.pt"), "--prompt", "def ", "--max-new-tokens", "30",
                            "--seed", "1"]) == 0
    sample = capsys.readouterr().out
    assert sample.startswith("def ") and len(sample.rstrip("\n")) >= 30
    assert cli_sample.main(["--ckpt", str(out / "ckpt.pt"), "--prompt", "def ", "--max-new-tokens", "30",
                            "--seed", "1"]) == 0
    assert capsys.readouterr().out == sample, "--seed makes samples reproducible"

    assert cli_eval.main(["--ckpt", str(out / "ckpt.pt"), "--max-batches", "3"]) == 0
    table = capsys.readouterr().out
    assert "perplexity" in table and "unigram_entropy" in table

    rc = cli.main(["gpt", "--steps", "8", "--out", str(out), *TINY_GPT])  # would overwrite the run
    assert_one_line_error(capsys, rc, "--resume", "--overwrite")
    assert cli.main(["gpt", "--resume", "--steps", "12", "--out", str(out), "--no-progress"]) == 0
    assert "resuming from" in capsys.readouterr().out
    assert load_checkpoint(out / "ckpt.pt")["step"] == 12
    rc = cli.main(["gpt", "--resume", "--d-model", "64", "--out", str(out), "--no-progress"])
    assert_one_line_error(capsys, rc, "--d-model", "cannot change")


def test_train_seq2seq_then_decode_and_score(tmp_path, capsys):
    out = tmp_path / "s2s"
    assert cli.main(["seq2seq", "--task", "copy", "--n-train", "256", "--n-test", "32", "--steps", "6",
                     "--d-model", "32", "--batch-size", "16", "--out", str(out), "--no-progress"]) == 0
    assert "exact_match" in capsys.readouterr().out
    assert cli_sample.main(["--ckpt", str(out / "ckpt.pt"), "--prompt", "123"]) == 0
    assert set(capsys.readouterr().out.strip()) <= set("0123456789+")
    assert cli_eval.main(["--ckpt", str(out / "ckpt.pt")]) == 0
    table = capsys.readouterr().out
    assert "exact_match" in table and "bleu" in table


@pytest.mark.parametrize("argv, fragments", [
    (["train", "gpt", "--data", "no/such/file.txt"], ["no/such/file.txt", "does not exist"]),
    (["train", "seq2seq", "--task", "rotate"], ["invalid choice", "rotate"]),
    (["train", "vit", "--data", "cifar"], ["invalid choice"]),
    (["train", "gpt", "--n-heads", "3", "--d-model", "32", "--max-chars", "5000"], ["divisible"]),
    (["train", "gpt", "--steps", "0", "--max-chars", "5000"], ["steps must be >= 1"]),
    (["train", "gpt", "--resume", "--out", "{tmp}/empty"], ["no checkpoint", "train first"]),
    (["train", "gpt", "--bogus"], ["unrecognized arguments"]),
    (["sample", "--ckpt", "{tmp}/missing.pt"], ["no checkpoint"]),
    (["eval", "--ckpt", "{tmp}/junk.pt"], ["not a readable"]),
    (["eval"], ["--ckpt"]),
])
def test_bad_input_gives_one_clear_line(tmp_path, capsys, argv, fragments):
    from tfmcourse.cli import main
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[0] == "train":
        argv += ["--no-progress", "--out", str(tmp_path / "run")] if "--out" not in argv else ["--no-progress"]
    rc = main(argv)
    assert_one_line_error(capsys, rc, *fragments)


def test_sample_refuses_a_vit_and_unknown_characters(tmp_path, capsys):
    assert cli.main(["vit", "--steps", "1", "--out", str(tmp_path / "vit"), "--no-progress"]) == 0
    assert cli.main(["gpt", "--steps", "1", "--out", str(tmp_path / "gpt"), *TINY_GPT]) == 0
    capsys.readouterr()
    rc = cli_sample.main(["--ckpt", str(tmp_path / "vit" / "ckpt.pt")])
    assert_one_line_error(capsys, rc, "tfmcourse eval")
    rc = cli_sample.main(["--ckpt", str(tmp_path / "gpt" / "ckpt.pt"), "--prompt", "\u263a"])
    assert_one_line_error(capsys, rc, "not in this CharTokenizer")


def test_entry_point_exit_codes_without_traceback(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(*args):
        return subprocess.run([sys.executable, "-m", "tfmcourse.cli", *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=120)

    ok = run("train", "seq2seq", "--help")
    assert ok.returncode == 0 and "--task" in ok.stdout and "--n-layers" in ok.stdout
    bad = run("eval", "--ckpt", "missing.pt")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    debug = run("eval", "--ckpt", "missing.pt", "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr
