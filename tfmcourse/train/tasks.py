"""The course's three training tasks, each rebuilt from a few plain settings stored in its checkpoint.

========  ==========================================  =============================================
kind      data                                        model and metrics
========  ==========================================  =============================================
gpt       characters of the stdlib or a text file     :class:`GPT`; val loss, perplexity
seq2seq   copy / reverse / sort / add digit strings   :class:`Transformer`; exact match, BLEU
vit       8x8 digits or procedural shapes             :class:`ViT`; accuracy
========  ==========================================  =============================================

``tfmcourse train`` stores the data settings (``spec``), the model config and, for text, the
tokenizer in the checkpoint; ``tfmcourse eval`` and ``sample`` rebuild the same data and model from it.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from .. import metrics
from ..data import (BOS, EOS, SEQ_VOCAB, ShapesDataset, SeqTaskDataset, TokenWindowDataset, collate_seq2seq,
                    load_digits_split, load_text, max_lengths, stdlib_corpus, train_val_split)
from ..gpt import GPT, GPTConfig
from ..models import Seq2SeqConfig, Transformer
from ..tokenizer import CharTokenizer, tokenizer_from_state_dict
from ..vit import ViT, ViTConfig
from .batches import Batch, BatchSource, LoaderBatches, RandomWindowBatches, eval_loader_batches

__all__ = ["KINDS", "TaskData", "load_data", "make_model_config", "build_model", "train_batches", "val_batches",
           "task_metrics", "unigram_entropy", "count_items"]

KINDS = ("gpt", "seq2seq", "vit")
CONFIGS = {"gpt": GPTConfig, "seq2seq": Seq2SeqConfig, "vit": ViTConfig}
MODELS = {"gpt": GPT, "seq2seq": Transformer, "vit": ViT}


@dataclass
class TaskData:
    """Train and validation data of one task, and what a model needs to know about them.

    ``train``/``val`` are 1-D token tensors for ``gpt`` and map-style datasets otherwise.
    """

    kind: str
    spec: dict[str, Any]
    train: Tensor | Dataset
    val: Tensor | Dataset
    collate_fn: Callable | None = None
    tokenizer: CharTokenizer | None = None
    info: dict[str, Any] = field(default_factory=dict)


def unigram_entropy(ids: Tensor, vocab_size: int) -> float:
    """Entropy (nats) of the token frequencies: the loss of a model that ignores all context."""
    p = torch.bincount(ids, minlength=vocab_size).double()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log()).sum())


def load_data(kind: str, spec: dict[str, Any], tokenizer_state: dict[str, Any] | None = None) -> TaskData:
    """Build the data of ``kind`` from ``spec``, deterministically (same spec, same data).

    Args:
        kind: ``"gpt"``, ``"seq2seq"`` or ``"vit"``.
        spec: gpt ``{source: "stdlib" | path, max_chars, val_fraction}``; seq2seq ``{task, n_train,
            n_test, min_len, max_len, seed}``; vit ``{dataset: "digits" | "shapes", test_fraction,
            n_train, n_test, image_size, seed}``.
        tokenizer_state: the checkpoint's tokenizer (gpt); by default one is built from the text.
    """
    if kind == "gpt":
        source = spec.get("source", "stdlib")
        text = stdlib_corpus(spec.get("max_chars", 2_000_000)) if source == "stdlib" else load_text(source)
        if spec.get("max_chars") and source != "stdlib":
            text = text[:spec["max_chars"]]
        tok = tokenizer_from_state_dict(tokenizer_state) if tokenizer_state else CharTokenizer.from_text(text)
        ids = torch.tensor(tok.encode(text), dtype=torch.long)
        train, val = train_val_split(ids, spec.get("val_fraction", 0.1))
        return TaskData(kind, spec, train, val, tokenizer=tok,
                        info={"vocab_size": tok.vocab_size, "chars": len(text),
                              "unigram_entropy": unigram_entropy(train, tok.vocab_size)})
    if kind == "seq2seq":
        task, lo, hi, seed = spec["task"], spec.get("min_len", 3), spec.get("max_len", 10), spec.get("seed", 0)
        train = SeqTaskDataset(task, spec.get("n_train", 10_000), min_len=lo, max_len=hi, seed=seed)
        test = SeqTaskDataset(task, spec.get("n_test", 1_000), min_len=lo, max_len=hi, seed=seed + 1, exclude=train)
        return TaskData(kind, spec, train, test, collate_fn=collate_seq2seq,
                        info={"vocab_size": SEQ_VOCAB.size, "max_len": max(max_lengths(task, hi))})
    if kind == "vit":
        name, seed = spec.get("dataset", "digits"), spec.get("seed", 0)
        if name == "digits":
            s = load_digits_split(spec.get("test_fraction", 0.2), seed)
            train, test, n_classes = TensorDataset(s.x_train, s.y_train), TensorDataset(s.x_test, s.y_test), 10
        elif name == "shapes":
            size = spec.get("image_size", 16)
            train = ShapesDataset(spec.get("n_train", 4000), size, seed)
            test = ShapesDataset(spec.get("n_test", 1000), size, seed + 1)
            n_classes = len(ShapesDataset.classes)
        else:
            raise ValueError(f"unknown image data {name!r}; choose digits or shapes")
        image = train[0][0]  # (C, H, W)
        return TaskData(kind, spec, train, test,
                        info={"n_classes": n_classes, "in_chans": image.shape[0], "image_size": image.shape[-1]})
    raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}")


def make_model_config(data: TaskData, sizes: dict[str, Any]) -> GPTConfig | Seq2SeqConfig | ViTConfig:
    """The model config for ``data``: sizes from the command line, vocabulary/classes from the data."""
    s, i = sizes, data.info
    if data.kind == "gpt":
        return GPTConfig(vocab_size=i["vocab_size"], block_size=s["block_size"], n_layers=s["n_layers"],
                         n_heads=s["n_heads"], d_model=s["d_model"], d_ff=s.get("d_ff"), dropout=s["dropout"])
    if data.kind == "seq2seq":
        d_ff = s.get("d_ff") or 4 * s["d_model"]
        return Seq2SeqConfig(src_vocab_size=i["vocab_size"], tgt_vocab_size=i["vocab_size"], d_model=s["d_model"],
                             n_heads=s["n_heads"], n_encoder_layers=s["n_layers"], n_decoder_layers=s["n_layers"],
                             d_ff=d_ff, dropout=s["dropout"], max_len=max(64, i["max_len"]))
    return ViTConfig(image_size=i["image_size"], patch_size=s["patch_size"], in_chans=i["in_chans"],
                     n_classes=i["n_classes"], d_model=s["d_model"], n_layers=s["n_layers"], n_heads=s["n_heads"],
                     d_ff=s.get("d_ff"), dropout=s["dropout"], pool=s.get("pool", "mean"))


def build_model(kind: str, config: dict[str, Any]) -> nn.Module:
    """The model of ``kind`` from a config stored as a plain dict (as in checkpoints)."""
    if kind not in MODELS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}")
    return MODELS[kind](CONFIGS[kind](**config))


def count_items(kind: str) -> tuple[Callable[[Batch], int], str]:
    """How to count a batch for throughput, and the unit's name."""
    if kind == "gpt":
        return (lambda b: b[0].numel()), "tok"
    return (lambda b: b[0].shape[0]), ("seq" if kind == "seq2seq" else "img")


def train_batches(data: TaskData, batch_size: int, *, block_size: int = 0, seed: int = 0, rank: int = 0,
                  world_size: int = 1, pin_memory: bool = False) -> BatchSource:
    """Endless, resumable training batches for this process."""
    if data.kind == "gpt":
        return RandomWindowBatches(data.train, block_size, batch_size, seed=seed, rank=rank, world_size=world_size)
    return LoaderBatches(data.train, batch_size, collate_fn=data.collate_fn, seed=seed, rank=rank,
                         world_size=world_size, pin_memory=pin_memory)


def val_batches(data: TaskData, batch_size: int, *, block_size: int = 0, max_batches: int | None = None,
                rank: int = 0, world_size: int = 1) -> Callable[[], Iterator[Batch]]:
    """This process's share of the validation set (at most ``max_batches`` batches over all processes).

    For text, windows are spread evenly over the whole validation split (not just its first pages).
    """
    dataset = data.val
    if data.kind == "gpt":
        n_windows = (len(data.val) - 1) // block_size
        want = n_windows if max_batches is None else min(n_windows, max_batches * batch_size * world_size)
        stride = max(block_size, (len(data.val) - block_size - 1) // max(want - 1, 1))
        dataset = TokenWindowDataset(data.val, block_size, stride=stride)
    return eval_loader_batches(dataset, batch_size, collate_fn=data.collate_fn, rank=rank, world_size=world_size,
                               max_batches=max_batches)


@torch.no_grad()
def task_metrics(data: TaskData, model: nn.Module, device: torch.device, *, batch_size: int = 256,
                 max_items: int | None = None) -> dict[str, float]:
    """The task's own scores on (the first ``max_items`` of) the validation set.

    seq2seq: ``exact_match`` (whole sequence right, greedy decoding) and ``bleu`` (character BLEU-4 in
    [0, 1]); vit: ``accuracy``; gpt: nothing beyond the loss (see :func:`perplexity`).
    """
    if data.kind == "gpt":
        return {}
    was_training = model.training
    model.eval()
    n = len(data.val) if max_items is None else min(max_items, len(data.val))
    loader = DataLoader(torch.utils.data.Subset(data.val, range(n)), batch_size, collate_fn=data.collate_fn,
                        generator=torch.Generator())  # leaves the global RNG (dropout) alone
    right = total = 0.0
    hyps: list[list[str]] = []
    refs: list[list[str]] = []
    for batch in loader:
        if data.kind == "seq2seq":
            src, _, targets = batch
            out = model.generate(src.to(device), targets.size(1), bos_id=BOS, eos_id=EOS).cpu()  # (B, <=T)
            right += metrics.sequence_accuracy(out, targets) * len(src)
            hyps += [list(SEQ_VOCAB.decode(row)) for row in out]
            refs += [list(SEQ_VOCAB.decode(row.clamp(min=0))) for row in targets]  # -100 -> PAD, skipped
        else:
            images, labels = batch
            logits, _ = model(images.to(device))
            right += metrics.accuracy(logits.float().cpu(), labels) * len(labels)
        total += len(batch[0])
    model.train(was_training)
    if data.kind == "seq2seq":
        return {"exact_match": right / total, "bleu": metrics.corpus_bleu(hyps, refs)}
    return {"accuracy": right / total}


def perplexity(loss: float) -> float:
    """``exp(loss)``; see :func:`tfmcourse.metrics.perplexity`."""
    return metrics.perplexity(loss) if math.isfinite(loss) else math.inf
