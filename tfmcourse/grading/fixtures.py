"""Objects that hidden tests have built inside the implementation's process: ``obj_spec("fixture:NAME", ...)``.

A test sometimes needs a model with a property no chapter's interface produces, such as one matrix
shared by two modules, or an optimizer, loss scaler and schedule to hand to a student's training step.
The fixtures use only ``torch``, so they build whatever chapter is stubbed. The grader builds the same
fixture from the same seed to know what to expect; a submission that tampers with them changes only its
own answers, which then disagree with the grader's.

==================  ===========================================================================
``tied_lm``         :class:`TiedLM`: embedding and output head share one matrix
``groups_zoo``      :class:`GroupsZoo`: every kind of parameter ``param_groups`` must sort
``probe_lm``        :class:`ProbeLM`: ``(idx) -> (logits (B, T, V), loss)``, records each forward
``probe_seq2seq``   :class:`ProbeSeq2Seq`: ``(src, tgt_in) -> (logits (B, T, V), loss)``, records
``probe_classifier``:class:`ProbeClassifier`: ``(x (B, F)) -> (logits (B, C), loss)``, records
``sgd``, ``adamw``  ``torch.optim.SGD`` / ``AdamW`` over a model's parameters (two groups: matrices, rest)
``grad_scaler``     ``torch.amp.GradScaler("cpu", ...)``
``lr_table``        :class:`LrTable`: a learning-rate schedule that is a table, and records its calls
``one_pass``        an iterator over a list (one pass, no ``len()``), like the Trainer's batch generator
==================  ===========================================================================
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PREFIX", "FIXTURES", "TiedLM", "GroupsZoo", "ProbeLM", "ProbeSeq2Seq", "ProbeClassifier", "LrTable"]

PREFIX = "fixture:"


class TiedLM(nn.Module):
    """Token embedding, a norm and an output head that reuses the embedding's matrix (as GPT-2 ties them).

    ``lm_head.weight`` *is* ``tok_emb.weight``: one parameter reachable from two modules.
    """

    def __init__(self, vocab_size: int, d_model: int) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.lm_head.weight = self.tok_emb.weight


class GroupsZoo(nn.Module):
    """One parameter of every kind ``param_groups`` has to sort, each with a distinct shape.

    Decayed: ``emb.weight`` (2-D), ``conv.weight`` (4-D), ``lin.weight`` (2-D). Not decayed: ``conv.bias``,
    ``lin.bias``, ``norm.weight``, ``norm.bias`` (1-D), ``temperature`` (0-D), ``pos`` (a matrix named by
    ``no_weight_decay()``). In no group: ``frozen`` (2-D) and ``frozen_bias`` (1-D), which do not require grad.
    """

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(7, 6)
        self.pos = nn.Parameter(0.02 * torch.randn(5, 6))
        self.conv = nn.Conv2d(2, 6, kernel_size=3)
        self.lin = nn.Linear(6, 4)
        self.norm = nn.LayerNorm(4)
        self.temperature = nn.Parameter(torch.tensor(1.5))
        self.frozen = nn.Parameter(torch.randn(3, 6), requires_grad=False)
        self.frozen_bias = nn.Parameter(torch.randn(9), requires_grad=False)

    def no_weight_decay(self) -> set[str]:
        return {"pos"}


class _Probe(nn.Module):
    """Tiny models of the course's calling convention for tests of a training step or an evaluation loop.

    ``forward(*inputs, targets=None)`` returns ``(logits, loss)`` (the loss: mean cross-entropy over targets
    that are not -100, as the course's models compute it). Every forward appends ``(training, grad enabled,
    autocast dtype or None)`` to ``self.seen``. Weights come from ``seed`` (float32, or ``dtype``).
    """

    def __init__(self, seed: int = 0, dtype: torch.dtype = torch.float32, eval_mode: bool = False) -> None:
        super().__init__()
        self.seen: list[tuple[bool, bool, torch.dtype | None]] = []
        self._seed, self._dtype, self._eval = seed, dtype, eval_mode

    def _init(self) -> None:
        g = torch.Generator().manual_seed(self._seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
        self.to(self._dtype)
        self.train(not self._eval)

    def _record(self, x: Tensor) -> None:
        dev = x.device.type
        amp = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else None
        self.seen.append((self.training, torch.is_grad_enabled(), amp))

    @staticmethod
    def _out(logits: Tensor, targets: Tensor | None) -> tuple[Tensor, Tensor | None]:
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, -2).float(), targets.flatten(), ignore_index=-100)
        return logits, loss


class ProbeLM(_Probe):
    """``(idx (B, T)) -> logits (B, T, vocab)``: embedding, a tanh layer, a head."""

    def __init__(self, vocab: int = 11, d: int = 8, **kw: Any) -> None:
        super().__init__(**kw)
        self.emb, self.fc, self.head = nn.Embedding(vocab, d), nn.Linear(d, d), nn.Linear(d, vocab)
        self._init()

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        self._record(idx)
        return self._out(self.head(torch.tanh(self.fc(self.emb(idx)))), targets)


class ProbeSeq2Seq(_Probe):
    """``(src (B, S), tgt_in (B, T)) -> logits (B, T, vocab)``: the target tokens see the mean source embedding."""

    def __init__(self, vocab: int = 11, d: int = 8, **kw: Any) -> None:
        super().__init__(**kw)
        self.src_emb, self.tgt_emb = nn.Embedding(vocab, d), nn.Embedding(vocab, d)
        self.fc, self.head = nn.Linear(d, d), nn.Linear(d, vocab)
        self._init()

    def forward(self, src: Tensor, tgt_in: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        self._record(src)
        memory = self.src_emb(src).mean(1, keepdim=True)  # (B, 1, d)
        return self._out(self.head(torch.tanh(self.fc(self.tgt_emb(tgt_in) + memory))), targets)


class ProbeClassifier(_Probe):
    """``(x (B, F)) -> logits (B, n_classes)``, like the ViT's head."""

    def __init__(self, n_features: int = 6, n_classes: int = 5, d: int = 8, **kw: Any) -> None:
        super().__init__(**kw)
        self.fc, self.head = nn.Linear(n_features, d), nn.Linear(d, n_classes)
        self._init()

    def forward(self, x: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        self._record(x)
        return self._out(self.head(torch.tanh(self.fc(x))), targets)


class LrTable:
    """A learning-rate schedule given as a table: ``lr_table(step) == values[step]``; records every ``step``
    asked in ``self.calls``. Asking for a step outside the table raises ``IndexError``."""

    def __init__(self, values: list[float]) -> None:
        self.values, self.calls = [float(v) for v in values], []

    def __call__(self, step: int) -> float:
        self.calls.append(step)
        if not 0 <= step < len(self.values):
            raise IndexError(f"the learning-rate schedule was asked for step {step}; this test's steps are "
                             f"0..{len(self.values) - 1}")
        return self.values[step]


def _two_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Matrices (decayed) and the rest: two parameter groups, so a learning rate set on one group only shows."""
    params = list(model.parameters())
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def _sgd(model: nn.Module, lr: float = 0.0, momentum: float = 0.0) -> torch.optim.SGD:
    return torch.optim.SGD(_two_groups(model, 0.0), lr=lr, momentum=momentum)


def _adamw(model: nn.Module, lr: float = 0.0, weight_decay: float = 0.0) -> torch.optim.AdamW:
    return torch.optim.AdamW(_two_groups(model, weight_decay), lr=lr)


def _grad_scaler(init_scale: float = 2.0**16, enabled: bool = True, growth_interval: int = 2000
                 ) -> torch.amp.GradScaler:
    return torch.amp.GradScaler("cpu", init_scale=init_scale, enabled=enabled, growth_interval=growth_interval)


def _one_pass(items: list) -> Any:
    """An iterator over ``items``: can be read once and has no ``len()`` (as the Trainer's generator)."""
    return iter(list(items))


FIXTURES: dict[str, Callable[..., Any]] = {
    "tied_lm": TiedLM, "groups_zoo": GroupsZoo, "probe_lm": ProbeLM, "probe_seq2seq": ProbeSeq2Seq,
    "probe_classifier": ProbeClassifier, "sgd": _sgd, "adamw": _adamw, "grad_scaler": _grad_scaler,
    "lr_table": LrTable, "one_pass": _one_pass}
