"""Chapter 6: the training loop's pieces: schedule, clipping, accumulation, checkpoints, exact resume."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch.utils.data import TensorDataset

from tfmcourse import GPT, GPTConfig
from tfmcourse.data import SEQ_VOCAB, SeqTaskDataset, collate_seq2seq
from tfmcourse.models import Seq2SeqConfig, Transformer
from tfmcourse.student import install, restore
from tfmcourse.train import (LoaderBatches, RandomWindowBatches, TrainConfig, Trainer, eval_loader_batches,
                             load_checkpoint, read_metrics, save_checkpoint, set_lr, step, warmup_cosine_lr)

pytestmark = pytest.mark.ch06

V, T = 17, 8


class Boom:
    """Fails while being pickled, like a disk that fills up mid-write."""

    def __reduce__(self):
        raise RuntimeError("disk full")


@pytest.fixture
def deterministic():
    yield
    torch.use_deterministic_algorithms(False)  # the trainer switches it on for the whole process


def tiny_gpt(dropout: float = 0.0, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=V, block_size=T, n_layers=1, n_heads=2, d_model=16, dropout=dropout))


def token_stream(n: int = 600) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, V, (n,), generator=g)


def window_dataset(n: int = 64) -> TensorDataset:
    data = token_stream(n * T + 1)
    x = data[:-1].view(n, T)
    y = data[1:].view(n, T)
    return TensorDataset(x, y)


# ---------------------------------------------------------------------------------------------- schedule
def test_warmup_cosine_key_steps():
    kw = dict(max_lr=1e-3, min_lr=1e-4, warmup_steps=10, total_steps=110)
    assert 0 < warmup_cosine_lr(0, **kw) <= 1e-3 / 10  # near zero, but it moves the weights
    assert warmup_cosine_lr(4, **kw) == pytest.approx(1e-3 * 5 / 11)
    assert warmup_cosine_lr(10, **kw) == pytest.approx(1e-3)  # peak at the end of warmup
    assert warmup_cosine_lr(60, **kw) == pytest.approx(5.5e-4)  # half-way down the cosine: the mean
    assert warmup_cosine_lr(110, **kw) == pytest.approx(1e-4)
    assert warmup_cosine_lr(10_000, **kw) == pytest.approx(1e-4)  # floor after the end
    lrs = [warmup_cosine_lr(s, **kw) for s in range(130)]
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))  # warmup rises
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # then never rises again
    assert warmup_cosine_lr(0, max_lr=1.0, min_lr=0.0, warmup_steps=0, total_steps=4) == 1.0
    assert warmup_cosine_lr(3, max_lr=1.0, min_lr=0.0, warmup_steps=0, total_steps=4) == pytest.approx(
        0.5 * (1 + math.cos(math.pi * 3 / 4)))


def test_warmup_cosine_rejects_bad_arguments():
    with pytest.raises(ValueError, match="min_lr"):
        warmup_cosine_lr(0, max_lr=1e-4, min_lr=1e-3, warmup_steps=1, total_steps=10)
    with pytest.raises(ValueError, match=">= 0"):
        warmup_cosine_lr(-1, max_lr=1e-3, min_lr=0.0, warmup_steps=1, total_steps=10)


def test_set_lr_sets_every_group():
    opt = tiny_gpt().configure_optimizers(lr=1.0)
    set_lr(opt, 0.25)
    assert len(opt.param_groups) == 2 and all(g["lr"] == 0.25 for g in opt.param_groups)


# ---------------------------------------------------------------------------------------------- one step
@pytest.mark.parametrize("clip", [None, 0.05])
def test_gradients_are_clipped_before_the_step(clip):
    model = tiny_gpt()
    trainer = Trainer(model, LoaderBatches(window_dataset(), 8), TrainConfig(steps=1, grad_clip=clip, progress=False),
                      device="cpu")
    seen = []
    trainer.optimizer.register_step_pre_hook(
        lambda opt, *_: seen.append(torch.stack([p.grad.norm() for p in model.parameters()]).norm().item()))
    trainer.fit()
    raw_norm = trainer.history[0].get("grad_norm")
    if clip is None:
        assert raw_norm is None
    else:
        assert raw_norm > clip, "the test needs a gradient larger than the threshold"
        assert seen[0] == pytest.approx(clip, rel=1e-4)


def test_accumulation_matches_one_big_batch():
    """Two micro-batches of 4 (accumulated) and one batch of 8 take the same optimizer steps."""
    data = window_dataset(64)
    runs = {}
    for bs, accum in ((8, 1), (4, 2)):
        model = tiny_gpt()
        cfg = TrainConfig(steps=12, batch_size=bs, grad_accum=accum, lr=3e-3, warmup_steps=2, progress=False,
                          log_every=1, eval_every=100)
        Trainer(model, LoaderBatches(data, bs), cfg, device="cpu").fit()  # 12 steps = 1.5 epochs
        runs[accum] = model
    for (n, a), b in zip(runs[1].named_parameters(), runs[2].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=f"{n} differs")


def tiny_seq2seq(seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(Seq2SeqConfig(src_vocab_size=SEQ_VOCAB.size, tgt_vocab_size=SEQ_VOCAB.size, d_model=16,
                                     n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32, dropout=0.0,
                                     max_len=16))


def test_accumulation_weighs_padded_micro_batches_by_their_targets():
    """Padded seq2seq micro-batches with different numbers of targets: accumulated steps equal big-batch steps
    (each micro-batch's loss weighs by its share of the step's targets), which dividing by k would not give."""
    data = SeqTaskDataset("reverse", 48, min_len=1, max_len=8, seed=3)  # lengths 1..8: very unequal counts
    runs = {}
    for bs, accum in ((8, 1), (4, 2)):
        model = tiny_seq2seq()
        cfg = TrainConfig(steps=6, batch_size=bs, grad_accum=accum, lr=3e-3, warmup_steps=1, progress=False,
                          log_every=1, eval_every=100)
        trainer = Trainer(model, LoaderBatches(data, bs, collate_fn=collate_seq2seq), cfg, device="cpu")
        trainer.fit()
        runs[accum] = (model, [r["loss"] for r in trainer.history])
    for (n, a), b in zip(runs[1][0].named_parameters(), runs[2][0].parameters()):
        if n.endswith("qkv.bias"):  # the key bias changes no output (softmax ignores a shift): its gradient is
            a, b = torch.cat([a[:16], a[32:]]), torch.cat([b[:16], b[32:]])  # rounding noise, which Adam magnifies
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=f"{n} differs")
    assert runs[1][1] == pytest.approx(runs[2][1], rel=1e-5)  # the logged loss is the big batch's too

    # the same micro-batches, each divided by their number (nanoGPT's rule), give other gradients
    model = tiny_seq2seq()
    items = sorted((data[i] for i in range(8)), key=lambda item: len(item[-1]))  # 4 short, then 4 long targets
    a, b = collate_seq2seq(items[:4]), collate_seq2seq(items[4:])
    counts = [int((x[-1] != -100).sum()) for x in (a, b)]
    assert counts[1] > 1.5 * counts[0], "the test needs micro-batches with very different numbers of targets"
    grads = []
    for weights in ([c / sum(counts) for c in counts], [0.5, 0.5]):
        model.zero_grad()
        for w, x in zip(weights, (a, b)):
            (model(*x)[1] * w).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    model.zero_grad()
    model(*collate_seq2seq(items))[1].backward()
    big = torch.cat([p.grad.flatten() for p in model.parameters()])
    torch.testing.assert_close(grads[0], big, rtol=1e-4, atol=1e-6)
    assert (grads[1] - big).norm() > 0.05 * big.norm()


def test_evaluation_is_the_mean_over_every_target():
    """Trainer.evaluate gives the mean loss over all counted targets, whatever the evaluation batch size."""
    data = SeqTaskDataset("reverse", 13, min_len=1, max_len=8, seed=4)
    model = tiny_seq2seq()
    batch = collate_seq2seq([data[i] for i in range(len(data))])
    with torch.no_grad():
        logits, _ = model(*batch[:-1])
        want = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch[-1].flatten(), ignore_index=-100).item()
    for bs in (2, 5, 13):  # last batches of 1 and 3 sequences
        trainer = Trainer(model, LoaderBatches(data, 4, collate_fn=collate_seq2seq), TrainConfig(progress=False),
                          device="cpu", val_batches=eval_loader_batches(data, bs, collate_fn=collate_seq2seq))
        assert trainer.evaluate()["loss"] == pytest.approx(want, rel=1e-5), f"eval batch size {bs}"
    model.eval()
    trainer.evaluate()
    assert not model.training, "evaluation leaves the model in the mode it found it in"


def test_trainer_calls_the_installed_step_and_evaluation():
    """The Trainer looks train_step and evaluate up by name at each call: install() puts a student's in."""
    calls = {"train_step": 0, "evaluate": 0}

    def counting(name):
        ref = getattr(step, name)

        def wrapper(*args, **kwargs):
            calls[name] += 1
            return ref(*args, **kwargs)
        return wrapper

    install({"train_step": counting("train_step"), "evaluate": counting("evaluate")})
    try:
        cfg = TrainConfig(steps=4, batch_size=4, grad_accum=2, eval_every=2, progress=False)
        Trainer(tiny_gpt(), LoaderBatches(window_dataset(), 4), cfg, device="cpu",
                val_batches=eval_loader_batches(window_dataset(8), 4)).fit()
    finally:
        restore()
    assert calls == {"train_step": 4, "evaluate": 2}
    assert step.train_step.__name__ == "train_step", "restore() puts the reference back"


def test_loader_batches_resume_mid_epoch_and_roll_over():
    data = TensorDataset(torch.arange(20))
    a = LoaderBatches(data, 3, seed=5)
    seq = [a.next_batch()[0].tolist() for _ in range(14)]  # 6 batches per epoch: rolls over twice
    assert sorted(sum(seq[:6], [])) == sorted(set(sum(seq[:6], [])))  # no repeats within an epoch
    assert seq[:6] != seq[6:12]  # a new shuffle each epoch
    b = LoaderBatches(data, 3, seed=5)
    for _ in range(8):
        b.next_batch()
    c = LoaderBatches(data, 3, seed=5)
    c.load_state_dict(b.state_dict())
    assert [c.next_batch()[0].tolist() for _ in range(6)] == seq[8:14]


def test_ddp_shards_of_a_step_make_the_single_process_batch():
    """What DDP relies on: world_size slices of batch B together are the one-process batch of world*B."""
    data = TensorDataset(torch.arange(40))
    whole = LoaderBatches(data, 8, seed=3)
    parts = [LoaderBatches(data, 4, seed=3, rank=r, world_size=2) for r in range(2)]
    for _ in range(7):  # across an epoch boundary
        combined = torch.cat([p.next_batch()[0] for p in parts])
        assert sorted(combined.tolist()) == sorted(whole.next_batch()[0].tolist())
    stream = token_stream()
    whole_w = RandomWindowBatches(stream, T, 6, seed=2)
    parts_w = [RandomWindowBatches(stream, T, 3, seed=2, rank=r, world_size=2) for r in range(2)]
    for _ in range(3):
        x, y = whole_w.next_batch()
        xs, ys = zip(*(p.next_batch() for p in parts_w))
        assert torch.equal(torch.cat(xs), x) and torch.equal(torch.cat(ys), y)
        assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one


def test_eval_batches_cover_each_item_once_across_processes():
    data = TensorDataset(torch.arange(11))
    seen = [i for r in range(3) for b in eval_loader_batches(data, 2, rank=r, world_size=3)() for i in b[0].tolist()]
    assert sorted(seen) == list(range(11))


# ---------------------------------------------------------------------------------------------- checkpoints
def test_checkpoint_write_is_atomic_and_safe_to_load(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint({"step": 1, "w": torch.ones(2)}, path)

    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint({"step": 2, "bad": Boom()}, path)
    assert load_checkpoint(path)["step"] == 1, "a failed write must leave the old checkpoint intact"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"], "no temp file left behind"
    torch.save({"evil": Boom}, tmp_path / "evil.pt")  # arbitrary classes are refused (weights_only)
    with pytest.raises(ValueError, match="not a readable"):
        load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(FileNotFoundError, match="train first"):
        load_checkpoint(tmp_path / "missing.pt")


def _resume_setup(kind: str, out_dir, seed_model: int = 0):
    model = tiny_gpt(dropout=0.2, seed=seed_model)  # dropout: the RNG state must be restored too
    if kind == "loader":
        data = LoaderBatches(window_dataset(40), 6, seed=7)  # 6 batches an epoch: resume crosses epochs
        val = eval_loader_batches(window_dataset(8), 4)
    else:
        data = RandomWindowBatches(token_stream(), T, 5, seed=7)
        val = None
    cfg = TrainConfig(steps=14, batch_size=6, grad_accum=2, lr=1e-2, warmup_steps=3, eval_every=4, log_every=1,
                      deterministic=True, seed=3, out_dir=str(out_dir), progress=False)
    return Trainer(model, data, cfg, device="cpu", val_batches=val)


@pytest.mark.parametrize("kind", ["loader", "windows"])
def test_resume_is_bit_exact(tmp_path, kind, deterministic):
    full = _resume_setup(kind, tmp_path / "full")
    full.fit()
    first = _resume_setup(kind, tmp_path / "cut")
    first.fit(stop_after=5)
    assert first.step == 5 and (tmp_path / "cut" / "ckpt.pt").exists()
    second = _resume_setup(kind, tmp_path / "cut", seed_model=99)  # different init: the checkpoint must win
    second.fit(resume=True)

    def losses(records, split="train"):
        return [(r["step"], r["loss"]) for r in records if r["split"] == split]

    assert losses(first.history) + losses(second.history) == losses(full.history)  # exact float equality
    assert losses(read_metrics(tmp_path / "cut" / "metrics.jsonl"), "val") == losses(full.history, "val")
    for a, b in zip(full.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(a, b)


def test_evaluating_more_often_does_not_change_training():
    """Evaluation draws from no global random stream, so dropout masks do not depend on eval_every."""
    losses = []
    for eval_every in (1, 100):
        cfg = TrainConfig(steps=6, batch_size=4, eval_every=eval_every, log_every=1, progress=False)
        trainer = Trainer(tiny_gpt(dropout=0.3), LoaderBatches(window_dataset(), 4), cfg, device="cpu",
                          val_batches=eval_loader_batches(window_dataset(8), 4))
        trainer.fit()
        losses.append([r["loss"] for r in trainer.history if r["split"] == "train"])
    assert losses[0] == losses[1]


def test_run_writes_log_plot_and_checkpoint(tmp_path):
    cfg = TrainConfig(steps=6, batch_size=4, eval_every=3, log_every=2, out_dir=str(tmp_path), progress=False)
    trainer = Trainer(tiny_gpt(), LoaderBatches(window_dataset(), 4), cfg, device="cpu",
                      val_batches=eval_loader_batches(window_dataset(8), 4), meta={"kind": "gpt"},
                      eval_fn=lambda m: {"answer": 42.0})
    trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [2, 4, 6]
    val = [r for r in records if r["split"] == "val"]
    assert [r["step"] for r in val] == [3, 6] and all(r["answer"] == 42.0 and r["loss"] > 0 for r in val)
    assert all({"lr", "items_per_s", "grad_norm"} <= r.keys() for r in records if r["split"] == "train")
    assert (tmp_path / "metrics.png").read_bytes()[:4] == b"\x89PNG"
    ckpt = load_checkpoint(tmp_path / "ckpt.pt")
    assert ckpt["step"] == 6 and ckpt["meta"] == {"kind": "gpt"} and ckpt["train_config"]["steps"] == 6
    assert set(ckpt["rng"][0]) == {"python", "numpy", "torch"}


def test_resume_into_a_different_model_says_so(tmp_path):
    cfg = TrainConfig(steps=2, batch_size=4, out_dir=str(tmp_path), progress=False)
    Trainer(tiny_gpt(), LoaderBatches(window_dataset(), 4), cfg, device="cpu").fit()
    bigger = GPT(GPTConfig(vocab_size=V, block_size=T, n_layers=1, n_heads=2, d_model=32))
    with pytest.raises(ValueError, match="does not fit this model"):
        Trainer(bigger, LoaderBatches(window_dataset(), 4), cfg, device="cpu").fit(resume=True)


# ---------------------------------------------------------------------------------------------- CUDA
@pytest.mark.gpu
@pytest.mark.parametrize("bf16", [True, False], ids=["bf16", "fp16-scaler"])
def test_cuda_mixed_precision_compile_and_resume(tmp_path, monkeypatch, bf16):
    if bf16 and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)  # fp16: exercise the GradScaler

    def run(**kw):
        torch.manual_seed(0)
        cfg = TrainConfig(steps=20, batch_size=16, lr=3e-3, warmup_steps=2, eval_every=10, log_every=5,
                          out_dir=str(tmp_path), progress=False, **kw)
        return Trainer(tiny_gpt(), RandomWindowBatches(token_stream(), T, 16, seed=0), cfg, device="cuda",
                       val_batches=eval_loader_batches(window_dataset(8), 4))

    first = run(compile=True)
    assert first.amp_dtype == (torch.bfloat16 if bf16 else torch.float16)
    assert first.scaler.is_enabled() == (first.amp_dtype == torch.float16)
    assert next(first.model.parameters()).is_cuda
    records = first.fit(stop_after=10)
    losses = [r["loss"] for r in records if r["split"] == "train"]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < math.log(V)
    second = run()
    second.fit(resume=True)
    assert second.step == 20 and "cuda" in load_checkpoint(tmp_path / "ckpt.pt")["rng"][0]
