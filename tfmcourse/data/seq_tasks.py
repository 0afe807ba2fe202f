"""Synthetic sequence-to-sequence tasks for the encoder–decoder Transformer (chapter 6).

Every task maps a string of digits to another one, so the answer is known exactly and a model's
accuracy can be measured without any download:

========  ==================  ===========
task      source              target
========  ==================  ===========
copy      ``"40213"``         ``"40213"``
reverse   ``"40213"``         ``"31204"``
sort      ``"40213"``         ``"01234"``
add       ``"123+45"``        ``"168"``
========  ==================  ===========

``min_len`` and ``max_len`` bound the *source* length in characters for every task (for ``add`` the
``+`` counts, so ``"123+45"`` has length 6; ``add`` needs ``min_len >= 3``). Operands of ``add``
have no leading zeros.

Batches follow the training convention of :class:`tfmcourse.Transformer`: the decoder reads
``tgt_in = BOS + target`` and learns to predict ``targets = target + EOS``; ``src`` and ``tgt_in``
are padded with ``PAD = 0``, ``targets`` with ``-100`` (``ignore_index`` of the cross-entropy).
"""
from __future__ import annotations

import functools
import random
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

__all__ = ["TASKS", "PAD", "BOS", "EOS", "IGNORE_INDEX", "SeqVocab", "SEQ_VOCAB", "make_seq2seq_example",
           "SeqTaskDataset", "collate_seq2seq", "seq2seq_loaders", "max_lengths"]

TASKS = ("copy", "reverse", "sort", "add")
PAD, BOS, EOS = 0, 1, 2
IGNORE_INDEX = -100


class SeqVocab:
    """The fixed vocabulary of the tasks: ``PAD=0, BOS=1, EOS=2``, then ``"0"``..``"9"`` and ``"+"``."""

    specials = ("<pad>", "<bos>", "<eos>")
    chars = "0123456789+"

    def __init__(self) -> None:
        self.itos: list[str] = [*self.specials, *self.chars]
        self.stoi = {c: i for i, c in enumerate(self.itos) if c in self.chars}

    @property
    def size(self) -> int:
        return len(self.itos)

    def __len__(self) -> int:
        return self.size

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of ``text`` (no BOS/EOS added)."""
        try:
            return [self.stoi[c] for c in text]
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} is not in the task vocabulary {self.chars!r}") from None

    def decode(self, ids: Iterable[int] | Tensor) -> str:
        """Characters of ``ids`` up to the first EOS, skipping PAD and BOS."""
        if isinstance(ids, Tensor):
            ids = ids.tolist()
        out = []
        for i in ids:
            if i == EOS:
                break
            if i in (PAD, BOS):
                continue
            if not 0 <= i < self.size:
                raise ValueError(f"id {i} is outside the task vocabulary (size {self.size})")
            out.append(self.itos[i])
        return "".join(out)


SEQ_VOCAB = SeqVocab()


def _check(task: str, min_len: int, max_len: int) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
    if task == "add" and min_len < 3:
        raise ValueError(f"'add' needs min_len >= 3 (two digits and a '+'), got {min_len}")


def _number(rng: random.Random, n_digits: int) -> str:
    first = rng.choice("0123456789" if n_digits == 1 else "123456789")  # no leading zeros
    return first + "".join(rng.choices("0123456789", k=n_digits - 1))


def make_seq2seq_example(task: str, rng: random.Random, min_len: int = 3, max_len: int = 10) -> tuple[str, str]:
    """One ``(source, target)`` pair of ``task`` with a source of ``min_len..max_len`` characters.

    Args:
        task: ``"copy"``, ``"reverse"``, ``"sort"`` or ``"add"``.
        rng: a ``random.Random``; the pair depends only on its state.
    """
    _check(task, min_len, max_len)
    length = rng.randint(min_len, max_len)
    if task == "add":
        n_a = rng.randint(1, length - 2)  # the '+' takes one character, b gets the rest
        a, b = _number(rng, n_a), _number(rng, length - 1 - n_a)
        return f"{a}+{b}", str(int(a) + int(b))
    src = "".join(rng.choices("0123456789", k=length))
    tgt = {"copy": src, "reverse": src[::-1], "sort": "".join(sorted(src))}[task]
    return src, tgt


def max_lengths(task: str, max_len: int) -> tuple[int, int]:
    """Longest ``src`` and ``tgt_in``/``targets`` a batch of ``task`` can have (for ``max_len`` configs)."""
    # a sum has at most one digit more than its longer operand (at most max_len - 2 digits); +1 for BOS/EOS
    return max_len, (max_len - 1 if task == "add" else max_len) + 1


class SeqTaskDataset(Dataset):
    """``n`` random examples of ``task``, the same for the same ``seed``.

    Items are ``(src_ids, tgt_ids)`` long tensors without BOS/EOS (:func:`collate_seq2seq` adds them);
    ``examples`` holds the strings.

    Held-out evaluation: pass the training set (or any collection of source strings) as ``exclude``
    and no example of this set has a source in it; a test set built that way never overlaps training.
    Duplicates *within* one set are allowed, as in any i.i.d. sample.

    Args:
        task: one of :data:`TASKS`.
        n: number of examples.
        min_len, max_len: source length range in characters.
        seed: seeds the generator of this set.
        exclude: sources that must not appear (e.g. the training set).
    """

    def __init__(self, task: str, n: int, *, min_len: int = 3, max_len: int = 10, seed: int = 0,
                 exclude: SeqTaskDataset | Iterable[str] | None = None) -> None:
        _check(task, min_len, max_len)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        banned = exclude.sources if isinstance(exclude, SeqTaskDataset) else frozenset(exclude or ())
        rng = random.Random(f"{task}-{seed}")  # string seeds are hashed deterministically across runs
        self.task, self.min_len, self.max_len, self.seed = task, min_len, max_len, seed
        self.examples: list[tuple[str, str]] = []
        tries, limit = 0, 50 * n + 1000
        while len(self.examples) < n:
            src, tgt = make_seq2seq_example(task, rng, min_len, max_len)
            tries += 1
            if src not in banned:
                self.examples.append((src, tgt))
            elif tries > limit:
                raise ValueError(f"could not draw {n} examples of {task!r} outside `exclude` after {tries} tries: "
                                 f"the task has too few distinct sources for min_len={min_len}, max_len={max_len}; "
                                 f"raise max_len or ask for fewer examples")
        self._ids = [(torch.tensor(SEQ_VOCAB.encode(s)), torch.tensor(SEQ_VOCAB.encode(t))) for s, t in self.examples]

    @functools.cached_property
    def sources(self) -> frozenset[str]:
        """The distinct source strings of this set."""
        return frozenset(s for s, _ in self.examples)

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self._ids[i]


def _pad(rows: Sequence[list[int]], value: int) -> Tensor:
    out = torch.full((len(rows), max(map(len, rows))), value, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, :len(r)] = torch.tensor(r, dtype=torch.long)
    return out


Ids = Sequence[int] | Tensor


def collate_seq2seq(batch: Sequence[tuple[Ids, Ids]]) -> tuple[Tensor, Tensor, Tensor]:
    """Pad a list of ``(src_ids, tgt_ids)`` into the three tensors the Transformer trains on.

    Shapes:
        ``src (B, S)`` padded with PAD; ``tgt_in (B, T)`` = BOS + target, padded with PAD;
        ``targets (B, T)`` = target + EOS, padded with ``-100``. ``S`` and ``T`` are the longest in
        the batch (``T = longest target + 1``).
    """
    if len(batch) == 0:
        raise ValueError("cannot collate an empty batch")
    srcs = [s.tolist() if isinstance(s, Tensor) else list(s) for s, _ in batch]
    tgts = [t.tolist() if isinstance(t, Tensor) else list(t) for _, t in batch]
    if any(len(s) == 0 for s in srcs):
        raise ValueError("every source needs at least one token")
    src = _pad(srcs, PAD)  # (B, S)
    tgt_in = _pad([[BOS, *t] for t in tgts], PAD)  # (B, T)
    targets = _pad([[*t, EOS] for t in tgts], IGNORE_INDEX)  # (B, T), tgt_in shifted left by one
    return src, tgt_in, targets


def seq2seq_loaders(task: str, *, n_train: int = 10_000, n_test: int = 1_000, batch_size: int = 64,
                    min_len: int = 3, max_len: int = 10, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """Train and held-out test loaders of ``task``.

    The training set uses ``seed``, the test set ``seed + 1`` with the training sources excluded. The
    training loader is shuffled by its own generator (seeded by ``seed``), the test loader is not.
    """
    train = SeqTaskDataset(task, n_train, min_len=min_len, max_len=max_len, seed=seed)
    test = SeqTaskDataset(task, n_test, min_len=min_len, max_len=max_len, seed=seed + 1, exclude=train)
    g = torch.Generator().manual_seed(seed)
    return (DataLoader(train, batch_size, shuffle=True, collate_fn=collate_seq2seq, generator=g),
            DataLoader(test, batch_size, shuffle=False, collate_fn=collate_seq2seq))
