"""Plot, measurement and widget helpers used by chapter 6 of the book and the capstone."""
import math

import matplotlib

matplotlib.use("Agg")

import ipywidgets as widgets  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tfmcourse import Seq2SeqConfig, Transformer  # noqa: E402
from tfmcourse.data import SEQ_VOCAB, SeqTaskDataset, collate_seq2seq  # noqa: E402
from tfmcourse.train import LoaderBatches, TrainConfig, Trainer  # noqa: E402
from tfmcourse.viz import seq2seq as vs  # noqa: E402
from tfmcourse.viz import training as vt  # noqa: E402
from tfmcourse.widgets import training as wt  # noqa: E402

pytestmark = pytest.mark.ch06
PNG = b"\x89PNG\r\n\x1a\n"


def tiny_transformer(seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(Seq2SeqConfig(src_vocab_size=SEQ_VOCAB.size, tgt_vocab_size=SEQ_VOCAB.size, d_model=16,
                                     n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32, dropout=0.0,
                                     max_len=16))


@pytest.fixture(scope="module")
def items():
    ds = SeqTaskDataset("reverse", 24, min_len=3, max_len=6, seed=3)
    return [ds[i] for i in range(len(ds))]


# ---------------------------------------------------------------- schedules


def test_lr_curve_follows_warmup_cosine_and_holds_the_floor():
    lrs = vt.lr_curve(100, max_lr=1.0, min_lr=0.1, warmup_steps=10, extra_steps=5)
    assert len(lrs) == 105
    assert lrs[0] == pytest.approx(1 / 11) and lrs[10] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))  # warmup rises
    assert all(a >= b for a, b in zip(lrs[10:100], lrs[11:100]))  # cosine falls
    assert lrs[100:] == [0.1] * 5


def test_plot_lr_curves_draws_one_line_per_schedule():
    fig = vt.plot_lr_curves({"a": [1, 2, 3], "b": [3, 2, 1]}, warmup_marks={"a": 1}, title="t")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()][:1] == ["a"]
    assert len([ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]) == 2


# ---------------------------------------------------------------- Adam vs AdamW


def test_adamw_decays_every_group_alike_adam_l2_does_not():
    stds = [0.01, 10.0]
    res = vt.decay_experiment(stds, steps=200, lr=1e-2, weight_decay=0.1, n=200)
    assert set(res) == {"Adam + L2", "AdamW"}
    assert res["AdamW"].shape == (201, 2) and torch.equal(res["AdamW"][0], torch.ones(2))
    expected = (1 - 1e-2 * 0.1) ** 200
    assert res["AdamW"][-1] == pytest.approx(torch.full((2,), expected), abs=0.05)
    small, large = res["Adam + L2"][-1]
    assert small < 0.1 and large > 0.9  # the L2 penalty is rescaled by each weight's gradient size
    fig = vt.plot_decay_experiment(res, stds, lr=1e-2, weight_decay=0.1)
    assert len(fig.axes) == 2


# ---------------------------------------------------------------- curves


def test_records_smooth_and_plot_history():
    hist = [{"step": 1, "split": "train", "loss": 3.0}, {"step": 2, "split": "train", "loss": 1.0},
            {"step": 2, "split": "val", "loss": 2.0, "exact_match": 0.5}]
    assert vt.records(hist) == ([1, 2], [3.0, 1.0])
    assert vt.records(hist, "exact_match", "val") == ([2], [0.5])
    assert vt.smooth([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    fig = vt.plot_history({"run": hist}, val=True, hlines={"baseline": 2.5}, logy=True, window=2, legend_loc="upper right")
    labels = [ln.get_label() for ln in fig.axes[0].get_lines()]
    assert labels == ["run", "run (validation)", "baseline"]
    assert fig.axes[0].get_yscale() == "log"


# ---------------------------------------------------------------- seq2seq helpers


def test_greedy_decode_and_accuracy_by_length(items):
    model = tiny_transformer()
    srcs, tgts, preds = vs.greedy_decode(model, items, batch_size=10)
    assert len(srcs) == len(tgts) == len(preds) == len(items)
    assert all(t == s[::-1] for s, t in zip(srcs, tgts))
    acc = vs.accuracy_by_length(model, items)
    assert set(acc) == {len(s) for s in srcs} and all(0.0 <= v <= 1.0 for v in acc.values())
    assert model.training  # greedy_decode restores the mode


def test_cross_attention_rows_are_distributions(items):
    model = tiny_transformer()
    src, tgt = items[0]
    w = vs.cross_attention(model, src, tgt)
    assert w.shape == (len(tgt) + 1, len(src))
    torch.testing.assert_close(w.sum(-1), torch.ones(len(tgt) + 1))


def test_probe_logs_scores_and_keeps_snapshots(items):
    model = tiny_transformer()
    probe = vs.Seq2SeqProbe(items, n_show=3, attn_item=items[5])
    cfg = TrainConfig(steps=4, batch_size=8, lr=1e-3, warmup_steps=1, eval_every=2, log_every=2, progress=False)
    trainer = Trainer(model, LoaderBatches(items, 8, collate_fn=collate_seq2seq), cfg, device="cpu", eval_fn=probe)
    probe.step_of = lambda: trainer.step
    hist = trainer.fit()
    val = [r for r in hist if r["split"] == "val"]
    assert [r["step"] for r in val] == [2, 4] and all({"exact_match", "bleu"} <= set(r) for r in val)
    assert [s["step"] for s in probe.snapshots] == [2, 4]
    snap = probe.snapshots[-1]
    assert len(snap["examples"]) == 3 and snap["attn"].shape == (len(items[5][1]) + 1, len(items[5][0]))
    assert snap["attn_src"] == SEQ_VOCAB.decode(items[5][0])
    with pytest.raises(ValueError, match="at least one"):
        vs.Seq2SeqProbe([])


def test_probe_without_a_transformer_decoder_has_no_attention(items):
    torch.manual_seed(0)
    probe = vs.Seq2SeqProbe(items[:4])
    scores = probe(vs.GRUSeq2Seq(SEQ_VOCAB.size, 8))
    assert set(scores) == {"exact_match", "bleu"} and probe.snapshots[0]["attn"] is None


# ---------------------------------------------------------------- GRU baseline


def test_gru_seq2seq_interface_padding_and_generate():
    torch.manual_seed(0)
    gru = vs.GRUSeq2Seq(SEQ_VOCAB.size, 12)
    a = ([3, 4, 5], [5, 4, 3])
    b = ([6, 7, 8, 9, 10], [10, 9, 8, 7, 6])
    src, tgt_in, targets = collate_seq2seq([a, b])
    logits, loss = gru(src, tgt_in, targets)
    assert logits.shape == (2, tgt_in.size(1), SEQ_VOCAB.size) and loss.ndim == 0
    # padding after the short source does not change its encoding (it is packed away)
    alone, _, _ = collate_seq2seq([a])
    torch.testing.assert_close(gru.encode(src)[:, :1], gru.encode(alone))
    loss.backward()
    assert all(p.grad is not None for p in gru.parameters())
    out = gru.generate(src, 7, bos_id=1, eos_id=2)
    assert out.shape[0] == 2 and out.shape[1] <= 7 and out.dtype == torch.long


def test_gru_learns_copy_of_short_sequences():
    ds = SeqTaskDataset("copy", 512, min_len=2, max_len=3, seed=0)
    torch.manual_seed(0)
    gru = vs.GRUSeq2Seq(SEQ_VOCAB.size, 32)
    cfg = TrainConfig(steps=120, batch_size=64, lr=1e-2, warmup_steps=5, eval_every=1000, log_every=10,
                      progress=False)
    hist = Trainer(gru, LoaderBatches(ds, 64, collate_fn=collate_seq2seq), cfg, device="cpu").fit()
    losses = [r["loss"] for r in hist if r["split"] == "train"]
    assert losses[-1] < 0.5 * losses[0]


def test_plot_accuracy_by_length():
    fig = vs.plot_accuracy_by_length({"a": {3: 1.0, 4: 0.5}, "b": {3: 0.2, 4: 0.1}}, title="t")
    assert [ln.get_label() for ln in fig.axes[0].get_lines()] == ["a", "b"]


# ---------------------------------------------------------------- widgets


def test_grid_explorer_links_both_sliders_in_the_browser():
    png = [[PNG + bytes([i, j]) for j in range(3)] for i in range(2)]
    box = wt.grid_explorer(png, ["r0", "r1"], ["c0", "c1", "c2"], value=(1, 2), caption="<b>hi</b>")
    caption, rows, cols, outer = box.children
    assert isinstance(caption, widgets.HTML) and isinstance(outer, widgets.Stack)
    assert outer.selected_index == 1 and rows.value == "r1" and cols.value == "c2"
    assert all(inner.selected_index == 2 for inner in outer.children)
    assert outer.children[1].children[2].value == PNG + bytes([1, 2])
    with pytest.raises(ValueError, match="grid"):
        wt.grid_explorer(png, ["r0"], ["c0", "c1", "c2"])
    with pytest.raises(ValueError, match="outside"):
        wt.grid_explorer(png, ["r0", "r1"], ["c0", "c1", "c2"], value=(2, 0))


def test_schedule_frames_and_explorer():
    frames = wt.schedule_frames(50, [0, 5], [0.0, 0.5], dpi=30)
    assert len(frames) == 2 and all(len(r) == 2 for r in frames)
    assert all(f.startswith(PNG) for r in frames for f in r)
    box = wt.schedule_explorer(40, warmups=(0, 4), floors=(0.1,), value=(1, 0))
    assert box.children[-1].selected_index == 1


def test_progress_frames_and_explorer(items):
    model = tiny_transformer()
    probe = vs.Seq2SeqProbe(items[:5], n_show=2)
    probe(model)
    probe(model)
    frames = wt.progress_frames(probe.snapshots, dpi=30)
    assert len(frames) == 2 and all(f.startswith(PNG) for f in frames)
    box = wt.progress_explorer(probe.snapshots)
    assert box.children[-1].selected_index == 1
    gru_probe = vs.Seq2SeqProbe(items[:3])
    torch.manual_seed(0)
    gru_probe(vs.GRUSeq2Seq(SEQ_VOCAB.size, 8))
    assert wt.progress_frames(gru_probe.snapshots, dpi=30)[0].startswith(PNG)  # no attention panel


def test_lr_values_are_finite_for_zero_warmup():
    lrs = vt.lr_curve(10, max_lr=1e-3, min_lr=0.0, warmup_steps=0)
    assert lrs[0] == pytest.approx(1e-3) and all(math.isfinite(x) for x in lrs)
