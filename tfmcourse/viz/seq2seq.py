"""Seq2seq measurements for chapter 6: greedy decoding, cross-attention maps, a probe that snapshots a
model while it trains, accuracy by sequence length, and a GRU encoder–decoder as the recurrent baseline.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn

from .. import metrics
from ..data.seq_tasks import BOS, EOS, PAD, SEQ_VOCAB, collate_seq2seq
from ..utils import token_cross_entropy
from .attention import record_attention

__all__ = ["greedy_decode", "cross_attention", "Seq2SeqProbe", "GRUSeq2Seq", "accuracy_by_length",
           "plot_accuracy_by_length"]


@torch.no_grad()
def greedy_decode(model: nn.Module, items: Sequence[tuple[Tensor, Tensor]], *, batch_size: int = 256
                  ) -> tuple[list[str], list[str], list[str]]:
    """Greedy answers of ``model`` for ``(src, tgt)`` items: ``(sources, targets, predictions)`` as strings."""
    was_training = model.training
    model.eval()
    srcs, tgts, preds = [], [], []
    for i in range(0, len(items), batch_size):
        chunk = list(items[i:i + batch_size])
        src, _, targets = collate_seq2seq(chunk)
        out = model.generate(src, targets.size(1), bos_id=BOS, eos_id=EOS)
        srcs += [SEQ_VOCAB.decode(s) for s, _ in chunk]
        tgts += [SEQ_VOCAB.decode(t) for _, t in chunk]
        preds += [SEQ_VOCAB.decode(row) for row in out]
    model.train(was_training)
    return srcs, tgts, preds


def _scores(tgts: Sequence[str], preds: Sequence[str]) -> dict[str, float]:
    exact = sum(p == t for p, t in zip(preds, tgts)) / max(len(tgts), 1)
    return {"exact_match": exact, "bleu": metrics.corpus_bleu([list(p) for p in preds], [list(t) for t in tgts])}


@torch.no_grad()
def cross_attention(model: nn.Module, src: Tensor, tgt: Tensor, *, layer: int = -1) -> Tensor:
    """Head-averaged cross-attention weights ``(T, S)`` of decoder layer ``layer`` for one example.

    ``src`` and ``tgt`` are 1-D id tensors without BOS/EOS (as in :class:`SeqTaskDataset`); the decoder reads
    ``BOS + tgt`` (teacher forcing), so row ``t`` is the query that predicts output character ``t`` (the last
    row predicts EOS).
    """
    was_training = model.training
    model.eval()
    s, tgt_in, _ = collate_seq2seq([(src, tgt)])
    n_layers = len(model.decoder.layers)
    name = f"decoder.layers.{layer % n_layers}.cross_attn"
    with record_attention(model) as maps:
        model(s, tgt_in)
    model.train(was_training)
    return maps[name][0].mean(0)  # (T, S)


class Seq2SeqProbe:
    """An ``eval_fn`` for :class:`~tfmcourse.train.Trainer` that scores a seq2seq model and keeps snapshots.

    Each call decodes ``items`` greedily, returns ``{"exact_match", "bleu"}`` (logged by the Trainer) and
    appends a snapshot: the step, the scores, the first ``n_show`` decoded examples and the cross-attention of
    ``attn_item`` (``None`` for a model without a Transformer decoder).

    Args:
        items: held-out ``(src, tgt)`` pairs.
        n_show: examples kept per snapshot.
        attn_item: the ``(src, tgt)`` pair whose cross-attention is kept (default: ``items[0]``).
        step_of: returns the current step (e.g. ``lambda: trainer.step``); by default calls are counted.
    """

    def __init__(self, items: Sequence[tuple[Tensor, Tensor]], *, n_show: int = 6,
                 attn_item: tuple[Tensor, Tensor] | None = None, step_of: Callable[[], int] | None = None) -> None:
        if not items:
            raise ValueError("Seq2SeqProbe needs at least one (src, tgt) item to decode")
        self.items, self.n_show, self.step_of = list(items), n_show, step_of
        self.attn_item = attn_item if attn_item is not None else self.items[0]
        self.snapshots: list[dict[str, Any]] = []

    def __call__(self, model: nn.Module) -> dict[str, float]:
        srcs, tgts, preds = greedy_decode(model, self.items)
        scores = _scores(tgts, preds)
        s, t = self.attn_item
        self.snapshots.append({
            "step": self.step_of() if self.step_of else len(self.snapshots),
            **scores,
            "examples": list(zip(srcs, tgts, preds))[:self.n_show],
            "attn": cross_attention(model, s, t) if hasattr(getattr(model, "decoder", None), "layers") else None,
            "attn_src": SEQ_VOCAB.decode(s), "attn_tgt": SEQ_VOCAB.decode(t),
        })
        return scores


# ------------------------------------------------------------------------------------------ GRU baseline
class GRUSeq2Seq(nn.Module):
    """A recurrent encoder–decoder without attention (Cho et al. 2014): the baseline of chapter 6.

    The encoder GRU reads the source; its final hidden state, one vector of size ``hidden``, is all the
    decoder GRU gets to know about the source. Same training interface as :class:`tfmcourse.Transformer`.

    Shapes:
        src ``(B, S)``, tgt_in ``(B, T)`` -> logits ``(B, T, vocab_size)``.
    """

    def __init__(self, vocab_size: int, hidden: int, *, n_layers: int = 1, pad_id: int = PAD) -> None:
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, hidden)
        self.encoder = nn.GRU(hidden, hidden, n_layers, batch_first=True)
        self.decoder = nn.GRU(hidden, hidden, n_layers, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)

    def encode(self, src: Tensor) -> Tensor:
        """The encoder's final state ``(n_layers, B, hidden)`` (padding is skipped, not read)."""
        lengths = (src != self.pad_id).sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(src), lengths, batch_first=True, enforce_sorted=False)
        _, h = self.encoder(packed)
        return h

    def forward(self, src: Tensor, tgt_in: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        out, _ = self.decoder(self.embed(tgt_in), self.encode(src))  # (B, T, H)
        logits = self.head(out)
        loss = None
        if targets is not None:
            loss = token_cross_entropy(logits, targets)
        return logits, loss

    @torch.no_grad()
    def generate(self, src: Tensor, max_new_tokens: int, *, bos_id: int, eos_id: int | None = None) -> Tensor:
        """Greedy decoding, one token at a time with the recurrent state: ``(B, <= max_new_tokens)``."""
        h = self.encode(src)
        nxt = torch.full((src.size(0), 1), bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
        out = []
        for _ in range(max_new_tokens):
            o, h = self.decoder(self.embed(nxt), h)
            tok = self.head(o[:, -1]).argmax(-1)  # (B,)
            if eos_id is not None:
                tok = tok.masked_fill(done, self.pad_id)
                done |= tok == eos_id
            out.append(tok)
            nxt = tok[:, None]
            if eos_id is not None and bool(done.all()):
                break
        return torch.stack(out, 1)


@torch.no_grad()
def accuracy_by_length(model: nn.Module, items: Sequence[tuple[Tensor, Tensor]]) -> dict[int, float]:
    """Exact-match accuracy of greedy decoding, per source length."""
    srcs, tgts, preds = greedy_decode(model, items)
    by_len: dict[int, list[bool]] = {}
    for s, t, p in zip(srcs, tgts, preds):
        by_len.setdefault(len(s), []).append(p == t)
    return {n: sum(v) / len(v) for n, v in sorted(by_len.items())}


def plot_accuracy_by_length(results: Mapping[str, Mapping[int, float]], *, ax=None, title: str | None = None):
    """Exact match against source length, one line per model. Returns the figure."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    for name, acc in results.items():
        ax.plot(list(acc), list(acc.values()), "-o", ms=4, lw=1.5, label=name)
    ax.set_xlabel("source length (digits)")
    ax.set_ylabel("exact match")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(True, alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return ax.figure
