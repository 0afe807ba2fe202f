"""Training: the loop, its learning-rate schedule, resumable data, checkpoints and multi-GPU glue.

========================  ===================================================================
:mod:`.schedule`          ``warmup_cosine_lr`` (linear warmup + cosine decay), ``set_lr``
:mod:`.step`              ``train_step`` (one update: accumulation, AMP, unscale, clip) and ``evaluate``
:mod:`.trainer`           ``TrainConfig`` and ``Trainer``: the loop around them, logging, DDP, checkpoints
:mod:`.batches`           resumable batch streams (map-style datasets, random LM windows)
:mod:`.checkpoint`        atomic, ``weights_only``-safe checkpoints with every RNG state
:mod:`.distributed`       ``torchrun`` / DDP set-up (NCCL on CUDA, gloo on CPU)
:mod:`.tracking`          ``metrics.jsonl`` and the PNG of the curves
:mod:`.tasks`             the three course tasks (char GPT, seq2seq, ViT): data, model, metrics
:mod:`.cli` & co.         ``tfmcourse train | sample | eval``
========================  ===================================================================
"""
from .batches import LoaderBatches, RandomWindowBatches, eval_loader_batches
from .checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from .distributed import DistInfo, cleanup_distributed, dist_info, setup_distributed
from .schedule import set_lr, warmup_cosine_lr
from .step import evaluate, train_step
from .tracking import MetricsLog, plot_metrics, read_metrics
from .trainer import TrainConfig, Trainer, resolve_amp_dtype

__all__ = ["warmup_cosine_lr", "set_lr", "train_step", "evaluate", "TrainConfig", "Trainer", "resolve_amp_dtype",
           "LoaderBatches", "RandomWindowBatches", "eval_loader_batches", "save_checkpoint",
           "load_checkpoint", "capture_rng_state", "restore_rng_state", "DistInfo", "dist_info",
           "setup_distributed", "cleanup_distributed", "MetricsLog", "read_metrics", "plot_metrics"]
