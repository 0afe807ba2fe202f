"""One training loop for every model of the course (GPT, encoder–decoder, ViT), readable top to bottom.

The loop is nanoGPT's ``train.py`` taken apart into named steps::

    for step in range(steps):
        fetch grad_accum micro-batches, move them to the device
        train_step(...)                                  # tfmcourse.train.step: forward under autocast,
                                                         # token-weighted loss, backward per micro-batch,
                                                         # unscale, clip, lr = schedule(step), step, zero
        every log_every: loss, lr, throughput -> progress bar + metrics.jsonl
        every eval_every: evaluate(...) (token-weighted validation loss), metrics, plot, checkpoint

The step and the evaluation are :func:`~tfmcourse.train.step.train_step` and
:func:`~tfmcourse.train.step.evaluate` (the chapter 6 exercise), called by their module-level names here,
so that :func:`tfmcourse.student.install` makes the Trainer run a student's own. Any model works whose
``forward(*batch[:-1])`` returns ``(logits, ...)``; the batch is a tuple of tensors whose last element
holds the targets (see :mod:`tfmcourse.train.step`).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from ..optim import make_optimizer
from ..utils import get_device, seed_everything
from .batches import Batch, BatchSource
from .checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from .config import TrainConfig, resolve_amp_dtype
from .distributed import all_gather_object, all_reduce_sum, dist_info
from .schedule import warmup_cosine_lr
from .step import evaluate, train_step
from .tracking import MetricsLog, plot_metrics, read_metrics

__all__ = ["TrainConfig", "Trainer", "resolve_amp_dtype"]


class Trainer:
    """Train ``model`` on batches from ``train_data``; evaluate, log, plot and checkpoint along the way.

    Args:
        model: returns ``(logits, loss)`` from ``model(*batch)``.
        train_data: endless, resumable batch source (see :mod:`tfmcourse.train.batches`).
        config: the :class:`TrainConfig`.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ... (under DDP: this process's device).
        val_batches: called at each evaluation; yields this process's validation batches.
        eval_fn: extra metrics ``eval_fn(model) -> {name: value}``, run on rank 0 (e.g. accuracy).
        count_items: items in a batch, for throughput (default: ``batch[0].shape[0]``).
        unit: what an item is, for the progress bar (``"tok"``, ``"img"``, ``"seq"``).
        meta: stored in every checkpoint (model kind and config, tokenizer, data settings).
    """

    def __init__(self, model: nn.Module, train_data: BatchSource, config: TrainConfig, *,
                 device: str | torch.device = "auto", val_batches: Callable[[], Iterator[Batch]] | None = None,
                 eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
                 count_items: Callable[[Batch], int] | None = None, unit: str = "items",
                 meta: dict[str, Any] | None = None) -> None:
        self.config, self.train_data, self.val_batches, self.eval_fn = config, train_data, val_batches, eval_fn
        self.count_items = count_items or (lambda batch: batch[0].shape[0])
        self.unit, self.meta = unit, dict(meta or {})
        self.info = dist_info()
        self.device = get_device(device)
        if self.device.type == "cuda" and self.device.index is None:  # DDP needs the exact GPU
            self.device = torch.device("cuda", torch.cuda.current_device())
        if self.device.type == "cuda" and not config.deterministic:
            torch.backends.cuda.matmul.allow_tf32 = True  # tensor cores for float32 matmuls
            torch.backends.cudnn.allow_tf32 = True
        self.model = model.to(self.device)  # the plain module: checkpoints and evaluation use it
        self.optimizer = make_optimizer(self.model, lr=config.lr, weight_decay=config.weight_decay,
                                        betas=config.betas)
        self.amp_dtype = resolve_amp_dtype(self.device, config.amp)
        # fp16 has a narrow exponent: scale the loss up so small gradients do not flush to zero.
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.ddp: DDP | None = None
        engine: nn.Module = self.model
        if self.info.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            engine = self.ddp = DDP(self.model, device_ids=ids)
        # Compile after wrapping in DDP, so the compiler can overlap gradient all-reduce with backward.
        self.engine = torch.compile(engine) if config.compile else engine
        self.step = 0
        self.last_checkpoint_step: int | None = None
        self.history: list[dict[str, Any]] = []
        out = Path(config.out_dir) if config.out_dir else None
        self.ckpt_path, self.log_path = (out / "ckpt.pt", out / "metrics.jsonl") if out else (None, None)
        self.plot_path = out / "metrics.png" if out else None

    @property
    def precision(self) -> str:
        return "float32" if self.amp_dtype is None else f"{str(self.amp_dtype)[6:]} autocast"

    # ------------------------------------------------------------------------------------------ one step
    def lr_at(self, step: int) -> float:
        """The learning rate of optimizer update ``step`` (0-based): warmup, then cosine to ``final_lr``."""
        c = self.config
        return warmup_cosine_lr(step, max_lr=c.lr, min_lr=c.final_lr, warmup_steps=c.warmup_steps, total_steps=c.steps)

    def train_step(self) -> tuple[dict[str, Any], int]:
        """One optimizer step over ``grad_accum`` micro-batches: the step's result and the items it saw.

        The result is :func:`~tfmcourse.train.step.train_step`'s: ``{"loss", "n_targets", "grad_norm", "lr"}``.
        """
        c = self.config
        batches = [self.train_data.next_batch() for _ in range(c.grad_accum)]
        n_items = sum(self.count_items(b) for b in batches)
        batches = [tuple(t.to(self.device, non_blocking=True) for t in b) for b in batches]
        # self.engine: the compiled / DDP-wrapped model (no_sync lives there); same parameters as self.model
        out = train_step(self.engine, self.optimizer, batches, step=self.step, lr_schedule=self.lr_at,
                         grad_clip=c.grad_clip, scaler=self.scaler, amp_dtype=self.amp_dtype)
        return out, n_items

    # ------------------------------------------------------------------------------------------ the loop
    def fit(self, *, resume: str | Path | bool = False, stop_after: int | None = None) -> list[dict[str, Any]]:
        """Train until ``config.steps``; return the records logged by this call.

        Args:
            resume: ``True`` continues from ``out_dir/ckpt.pt``, a path from that checkpoint.
            stop_after: return after this step (with a checkpoint), as if the run were interrupted; the
                learning-rate schedule still runs to ``config.steps``.
        """
        c = self.config
        if resume:
            self.load_checkpoint(self.ckpt_path if resume is True else resume)
            if c.deterministic:
                torch.use_deterministic_algorithms(True)
        else:
            seed_everything(c.seed + self.info.rank, deterministic=c.deterministic)
        main = self.info.is_main
        log = MetricsLog(self.log_path, resume_step=self.step if resume else None) if main and self.log_path else None
        from tqdm.auto import tqdm
        bar = tqdm(total=c.steps, initial=self.step, disable=not (c.progress and main), dynamic_ncols=True,
                   unit="step", desc=self.meta.get("kind", "train"))
        new_records: list[dict[str, Any]] = []

        def record(r: dict[str, Any]) -> None:
            new_records.append(r)
            self.history.append(r)
            if log is not None:
                log.log(r)

        self.model.train()
        t_last = t_plot = time.perf_counter()
        items = 0
        while self.step < c.steps and (stop_after is None or self.step < stop_after):
            out, n = self.train_step()
            self.step += 1
            items += n
            bar.update(1)
            if self.step % c.log_every == 0 or self.step == c.steps:
                loss_v, = all_reduce_sum([float(out["loss"])], self.device)  # float() waits for the GPU: not every step
                loss_v /= self.info.world_size
                lr = float(out["lr"])
                now = time.perf_counter()
                rate = items * self.info.world_size / max(now - t_last, 1e-9)
                t_last, items = now, 0
                r = {"step": self.step, "split": "train", "loss": loss_v, "lr": lr, f"{self.unit}_per_s": rate}
                if out.get("grad_norm") is not None:
                    r["grad_norm"] = float(out["grad_norm"])
                record(r)
                bar.set_postfix_str(f"loss {loss_v:.4f} lr {lr:.2e} {_si(rate)} {self.unit}/s")
            t_pause = time.perf_counter()
            if self.step % c.eval_every == 0 or self.step == c.steps:
                metrics = self.evaluate()
                if metrics:
                    record({"step": self.step, "split": "val", **metrics})
                if metrics and main:
                    bar.write(f"step {self.step}: " + ", ".join(f"val {k} {_fmt(v)}" for k, v in metrics.items()))
                if time.perf_counter() - t_plot > 30 or self.step == c.steps:  # a plot costs ~0.2 s
                    self._plot()
                    t_plot = time.perf_counter()
            every = c.ckpt_every or c.eval_every
            if self.ckpt_path is not None and (self.step % every == 0 or self.step in (c.steps, stop_after)):
                self.save_checkpoint()
                self.last_checkpoint_step = self.step
            t_last += time.perf_counter() - t_pause  # evaluation and checkpoints are not training throughput
        bar.close()
        if self.step != c.steps:
            self._plot()
        return new_records

    def _plot(self) -> None:
        if self.info.is_main and self.plot_path is not None and self.log_path is not None:
            plot_metrics(read_metrics(self.log_path), self.plot_path, title=self.meta.get("title", ""))

    # ------------------------------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[str, float]:
        """Validation loss (the mean over every counted target of every process's share) plus ``eval_fn`` metrics."""
        out: dict[str, float] = {}
        if self.val_batches is not None:
            batches = (tuple(t.to(self.device, non_blocking=True) for t in b) for b in self.val_batches())
            res = evaluate(self.model, batches, amp_dtype=self.amp_dtype)
            n = float(res["n_targets"])
            total, count = all_reduce_sum([float(res["loss"]) * n if n else 0.0, n], self.device)
            if count:
                out["loss"] = total / count
        if self.eval_fn is not None and self.info.is_main:
            was_training = self.model.training
            self.model.eval()
            with torch.no_grad():
                out.update(self.eval_fn(self.model))
            self.model.train(was_training)
        return out

    # ------------------------------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs (collective under DDP: every process must call it)."""
        return {"format": "tfmcourse-checkpoint-1", "step": self.step, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                "data": self.train_data.state_dict(),
                "rng": all_gather_object(capture_rng_state(self.device)),  # one per process
                "world_size": self.info.world_size, "train_config": asdict(self.config), "meta": self.meta}

    def save_checkpoint(self, path: str | Path | None = None) -> Path | None:
        """Write the checkpoint atomically (rank 0 writes; the others only contribute RNG states)."""
        path = path or self.ckpt_path
        if path is None:
            raise ValueError("no checkpoint path: set TrainConfig.out_dir or pass a path")
        state = self.state_dict()
        return save_checkpoint(state, path) if self.info.is_main else None

    def load_checkpoint(self, path: str | Path | None) -> dict[str, Any]:
        """Restore model, optimizer, scaler, step, data position and this process's RNG state."""
        if path is None:
            raise ValueError("nothing to resume from: set TrainConfig.out_dir or pass a checkpoint path")
        ckpt = load_checkpoint(path)
        try:
            self.model.load_state_dict(ckpt["model"])
        except RuntimeError as e:
            raise ValueError(f"{path} does not fit this model (different sizes?): "
                             f"{str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else e}") from e
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scaler.is_enabled() and ckpt["scaler"]:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.train_data.load_state_dict(ckpt["data"])
        self.step = int(ckpt["step"])
        rng = ckpt["rng"]
        if len(rng) == self.info.world_size:
            restore_rng_state(rng[self.info.rank], self.device)
        else:  # another number of processes: data order is kept, dropout streams cannot be
            seed_everything(self.config.seed + self.info.rank + self.step)
        return ckpt


def _si(x: float) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:.1f}{suffix}"
    return f"{x:.1f}"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
