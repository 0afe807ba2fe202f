"""Endless streams of training batches that remember where they are.

The trainer asks a *batch source* for ``next_batch()`` forever (epochs roll over by themselves) and
stores its ``state_dict()`` in every checkpoint, so a resumed run sees exactly the batches the
uninterrupted run would have seen. Two sources cover the course:

* :class:`LoaderBatches`: a map-style ``Dataset`` shuffled once per epoch. Under DDP each process
  reads its own slice through a ``DistributedSampler``; the slices of one step, put together, are the
  batch a single process would read with ``world_size`` times the batch size.
* :class:`RandomWindowBatches`: random windows of a long token stream (nanoGPT's ``get_batch``). One
  generator draws the windows of the whole global batch and each process keeps its share, so here too
  the data does not depend on the number of processes.

Batches stay on the CPU; the trainer moves them to the device.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..data.text import get_lm_batch

__all__ = ["BatchSource", "LoaderBatches", "RandomWindowBatches", "eval_loader_batches"]

Batch = tuple[Tensor, ...]


class BatchSource(Protocol):
    """What the trainer needs from its training data."""

    def next_batch(self) -> Batch: ...
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class LoaderBatches:
    """Shuffled mini-batches of a map-style dataset, epoch after epoch, resumable mid-epoch.

    Args:
        dataset: any map-style dataset; items are combined by ``collate_fn``.
        batch_size: items per batch *in this process*.
        collate_fn: as for ``DataLoader`` (default: stack).
        seed: epoch ``e`` is shuffled with ``seed + e`` (``DistributedSampler``'s rule).
        rank, world_size: this process's slice (``0, 1`` without DDP).
        num_workers: ``DataLoader`` worker processes (``0`` = load in the training process).
        pin_memory: page-locked batches for faster copies to a CUDA device.

    The last incomplete batch of an epoch is dropped, so every step sees a full batch.
    """

    def __init__(self, dataset: Dataset, batch_size: int, *, collate_fn: Callable | None = None, seed: int = 0,
                 rank: int = 0, world_size: int = 1, num_workers: int = 0, pin_memory: bool = False) -> None:
        self.sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed,
                                          drop_last=True)
        self.batches_per_epoch = len(self.sampler) // batch_size
        if self.batches_per_epoch == 0:
            raise ValueError(f"dataset of {len(dataset)} items is too small for "  # type: ignore[arg-type]
                             f"batch_size={batch_size} x {world_size} processes; lower --batch-size or use more data")
        self.dataset, self.batch_size, self.collate_fn = dataset, batch_size, collate_fn
        self.seed, self.num_workers, self.pin_memory = seed, num_workers, pin_memory
        self.epoch, self.batch_in_epoch = 0, 0
        self._it: Iterator | None = None

    def _start(self) -> Iterator:
        self.sampler.set_epoch(self.epoch)
        indices = list(self.sampler)[self.batch_in_epoch * self.batch_size:]
        # A private generator: a DataLoader otherwise draws its worker seed from the global torch RNG,
        # and a resumed run (which starts a loader at a different moment) would drift from the original.
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(DataLoader(self.dataset, self.batch_size, sampler=indices, collate_fn=self.collate_fn,
                               drop_last=True, num_workers=self.num_workers, pin_memory=self.pin_memory,
                               generator=g))

    def next_batch(self) -> Batch:
        if self.batch_in_epoch >= self.batches_per_epoch:
            self.epoch, self.batch_in_epoch, self._it = self.epoch + 1, 0, None
        if self._it is None:
            self._it = self._start()
        batch = next(self._it)
        self.batch_in_epoch += 1
        return tuple(batch)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.batch_in_epoch, self._it = int(state["epoch"]), int(state["batch_in_epoch"]), None


class RandomWindowBatches:
    """Random ``(x, y)`` windows of a token stream (:func:`~tfmcourse.data.get_lm_batch`); the generator
    state is the whole data-order state.

    Args:
        data: 1-D tensor of token ids.
        block_size: window length ``T``.
        batch_size: windows per batch *in this process*.
        seed: seeds the window generator.
        rank, world_size: this process's share of each global batch.
    """

    def __init__(self, data: Tensor, block_size: int, batch_size: int, *, seed: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        if data.dim() != 1 or data.numel() < block_size + 2:
            raise ValueError(f"need a 1-D token stream longer than block_size+1={block_size + 1}, got shape "
                             f"{tuple(data.shape)}; use more text or a smaller --block-size")
        self.data, self.block_size, self.batch_size = data, block_size, batch_size
        self.rank, self.world_size = rank, world_size
        self.generator = torch.Generator().manual_seed(seed)

    def next_batch(self) -> Batch:
        x, y = get_lm_batch(self.data, self.block_size, self.world_size * self.batch_size, generator=self.generator)
        mine = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        return x[mine], y[mine]

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


def eval_loader_batches(dataset: Dataset, batch_size: int, *, collate_fn: Callable | None = None, rank: int = 0,
                        world_size: int = 1, max_batches: int | None = None) -> Callable[[], Iterator[Batch]]:
    """A function that yields this process's share of a fixed evaluation set, in order.

    Process ``r`` takes items ``r, r + world_size, ...`` (no padding, so sums over processes count every
    item exactly once). ``max_batches`` caps the *global* number of batches for quick evaluations.
    """
    n = len(dataset)  # type: ignore[arg-type]
    if max_batches is not None:
        n = min(n, max_batches * batch_size * world_size)
    indices = list(range(rank, n, world_size))

    def batches() -> Iterator[Batch]:
        # A private generator keeps evaluation off the global RNG: how often a run evaluates must not
        # change its dropout masks.
        loader = DataLoader(dataset, batch_size, sampler=indices, collate_fn=collate_fn, generator=torch.Generator())
        for batch in loader:
            yield tuple(batch)
    return batches
