"""Chapter 6 data: the synthetic seq2seq tasks, their vocabulary, collate and loaders."""
import random

import pytest
import torch

from tfmcourse.data import (BOS, EOS, PAD, SEQ_VOCAB, TASKS, SeqTaskDataset, collate_seq2seq, make_seq2seq_example,
                            max_lengths, seq2seq_loaders)

pytestmark = pytest.mark.ch06


def test_vocab_layout_and_round_trip():
    assert (PAD, BOS, EOS) == (0, 1, 2) and SEQ_VOCAB.size == len(SEQ_VOCAB) == 14
    for text in ["0123456789+", "", "7", "123+45"]:
        assert SEQ_VOCAB.decode(SEQ_VOCAB.encode(text)) == text
    ids = SEQ_VOCAB.encode("12+3")
    assert SEQ_VOCAB.decode([BOS, *ids, EOS, 5, 6, PAD]) == "12+3"  # stops at EOS
    assert SEQ_VOCAB.decode(torch.tensor([*ids, PAD, PAD])) == "12+3"  # skips PAD, takes tensors
    assert min(ids) > EOS
    with pytest.raises(ValueError, match="'a'"):
        SEQ_VOCAB.encode("12a")
    with pytest.raises(ValueError, match="outside"):
        SEQ_VOCAB.decode([99])


@pytest.mark.parametrize("task", TASKS)
def test_targets_are_correct_for_many_seeds(task):
    for seed in range(300):
        rng = random.Random(seed)
        src, tgt = make_seq2seq_example(task, rng, 3, 10)
        assert 3 <= len(src) <= 10
        if task == "add":
            a, b = src.split("+")
            assert int(a) + int(b) == int(tgt)
            for s in (a, b, tgt):  # written without leading zeros
                assert s.isdigit() and (s == "0" or not s.startswith("0"))
        else:
            assert src.isdigit()
            assert tgt == {"copy": src, "reverse": src[::-1], "sort": "".join(sorted(src))}[task]
            if task == "reverse":
                assert all(tgt[i] == src[len(src) - 1 - i] for i in range(len(src)))
            if task == "sort":
                assert list(tgt) == sorted(tgt) and sorted(tgt) == sorted(src)


def test_lengths_cover_the_range_and_bad_arguments_fail():
    rng = random.Random(0)
    lengths = {len(make_seq2seq_example("copy", rng, 2, 5)[0]) for _ in range(200)}
    assert lengths == {2, 3, 4, 5}
    with pytest.raises(ValueError, match="unknown task"):
        make_seq2seq_example("multiply", rng, 3, 5)
    with pytest.raises(ValueError, match="min_len"):
        make_seq2seq_example("copy", rng, 5, 3)
    with pytest.raises(ValueError, match="min_len >= 3"):
        make_seq2seq_example("add", rng, 2, 5)


@pytest.mark.parametrize("task", TASKS)
def test_max_lengths_bound_every_batch(task):
    ds = SeqTaskDataset(task, 500, min_len=3, max_len=8, seed=1)
    src, tgt_in, targets = collate_seq2seq(list(ds))
    S, T = max_lengths(task, 8)
    assert src.size(1) <= S and tgt_in.size(1) <= T


def test_collate_shapes_padding_and_ignore_index():
    batch = [(torch.tensor(SEQ_VOCAB.encode("123")), torch.tensor(SEQ_VOCAB.encode("321"))),
             (SEQ_VOCAB.encode("45678"), SEQ_VOCAB.encode("9"))]
    src, tgt_in, targets = collate_seq2seq(batch)
    assert src.shape == (2, 5) and tgt_in.shape == targets.shape == (2, 4)
    assert src.dtype == tgt_in.dtype == targets.dtype == torch.long
    d = {c: SEQ_VOCAB.encode(c)[0] for c in "0123456789"}
    assert src.tolist() == [[d["1"], d["2"], d["3"], PAD, PAD], [d[c] for c in "45678"]]
    assert tgt_in.tolist() == [[BOS, d["3"], d["2"], d["1"]], [BOS, d["9"], PAD, PAD]]
    assert targets.tolist() == [[d["3"], d["2"], d["1"], EOS], [d["9"], EOS, -100, -100]]
    # teacher forcing: the input at t+1 is the target at t wherever both are real tokens
    real = (targets[:, :-1] != -100) & (targets[:, :-1] != EOS)
    assert torch.equal(tgt_in[:, 1:][real], targets[:, :-1][real])
    with pytest.raises(ValueError, match="empty batch"):
        collate_seq2seq([])


@pytest.mark.parametrize("task", TASKS)
def test_dataset_is_deterministic_per_seed_and_decodes(task):
    a = SeqTaskDataset(task, 100, seed=3)
    b = SeqTaskDataset(task, 100, seed=3)
    c = SeqTaskDataset(task, 100, seed=4)
    assert a.examples == b.examples and a.examples != c.examples
    assert len(a) == 100
    for (src_ids, tgt_ids), (src, tgt) in zip(a, a.examples):
        assert src_ids.dtype == torch.long
        assert SEQ_VOCAB.decode(src_ids) == src and SEQ_VOCAB.decode(tgt_ids) == tgt


def test_tasks_with_the_same_seed_differ():
    assert SeqTaskDataset("copy", 50, seed=0).sources != SeqTaskDataset("reverse", 50, seed=0).sources


@pytest.mark.parametrize("task", TASKS)
def test_test_set_never_overlaps_training(task):
    # short sequences make collisions between two random sets certain without the exclusion
    train = SeqTaskDataset(task, 400, min_len=3, max_len=4, seed=0)
    unfiltered = SeqTaskDataset(task, 400, min_len=3, max_len=4, seed=1)
    assert train.sources & unfiltered.sources  # the filter is needed
    test = SeqTaskDataset(task, 400, min_len=3, max_len=4, seed=1, exclude=train)
    assert len(test) == 400 and not (train.sources & test.sources)
    assert not (set(train.sources) & SeqTaskDataset(task, 50, min_len=3, max_len=4, seed=1,
                                                     exclude=list(train.sources)).sources)


def test_exclusion_that_cannot_be_satisfied_fails_clearly():
    train = SeqTaskDataset("copy", 5000, min_len=2, max_len=2, seed=0)  # covers all 100 two-digit sources
    assert len(train.sources) == 100
    with pytest.raises(ValueError, match="too few distinct sources"):
        SeqTaskDataset("copy", 10, min_len=2, max_len=2, seed=1, exclude=train)


def test_loaders_batches_and_held_out_test():
    train_loader, test_loader = seq2seq_loaders("reverse", n_train=256, n_test=64, batch_size=32, min_len=3,
                                                max_len=6, seed=0)
    assert len(train_loader.dataset) == 256 and len(test_loader.dataset) == 64
    assert not (train_loader.dataset.sources & test_loader.dataset.sources)
    src, tgt_in, targets = next(iter(train_loader))
    assert src.shape[0] == tgt_in.shape[0] == targets.shape[0] == 32
    assert (tgt_in[:, 0] == BOS).all() and ((targets == EOS).sum(1) == 1).all()
    for s, t in zip(src, targets):  # every example in the batch is a correct reversal
        assert SEQ_VOCAB.decode(t[t != -100]) == SEQ_VOCAB.decode(s)[::-1]
    # same seed, same shuffled order
    again, _ = seq2seq_loaders("reverse", n_train=256, n_test=64, batch_size=32, min_len=3, max_len=6, seed=0)
    assert torch.equal(next(iter(again))[0], src)
    assert [b[0].tolist() for b in test_loader] == [b[0].tolist() for b in test_loader]  # test order fixed


def test_batches_fit_the_transformer_and_the_metrics():
    from tfmcourse import Seq2SeqConfig, Transformer
    from tfmcourse.metrics import sequence_accuracy
    train_loader, _ = seq2seq_loaders("sort", n_train=64, n_test=8, batch_size=16, max_len=6)
    src, tgt_in, targets = next(iter(train_loader))
    S, T = max_lengths("sort", 6)
    cfg = Seq2SeqConfig(SEQ_VOCAB.size, SEQ_VOCAB.size, d_model=16, n_heads=2, n_encoder_layers=1,
                        n_decoder_layers=1, d_ff=32, max_len=max(S, T), dropout=0.0)
    model = Transformer(cfg)
    logits, loss = model(src, tgt_in, targets)
    assert logits.shape == (*tgt_in.shape, SEQ_VOCAB.size) and torch.isfinite(loss)
    generated = model.generate(src, T, bos_id=BOS, eos_id=EOS)  # (B, <= T), PAD after EOS
    assert 0.0 <= sequence_accuracy(generated, targets) <= 1.0
    oracle = targets.masked_fill(targets == -100, PAD)  # what a perfect model generates
    assert sequence_accuracy(oracle, targets) == 1.0
    assert [SEQ_VOCAB.decode(row) for row in oracle] == [SEQ_VOCAB.decode(t[t != -100]) for t in targets]
