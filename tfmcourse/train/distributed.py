"""Data-parallel training across processes, GPUs and machines with ``torchrun`` and DDP.

Every process holds a full copy of the model and trains on its own slice of each batch; after
``backward`` DistributedDataParallel averages the gradients over all processes (an all-reduce), so
every copy takes the same optimizer step. The effective batch is ``world_size x batch_size x
grad_accum``. Launch the same command with ``torchrun``; it sets ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE`` for each process::

    torchrun --nproc_per_node 8 -m tfmcourse.cli train gpt ...          # one machine, 8 GPUs
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --nproc_per_node 8 -m tfmcourse.cli train gpt ...

NCCL carries the all-reduce between CUDA devices, gloo between CPU processes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "dist_info", "setup_distributed", "cleanup_distributed", "all_reduce_sum",
           "all_gather_object", "barrier"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, plots and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def dist_info() -> DistInfo:
    """The current process group's layout (a single process when none is initialised)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistInfo()
    return DistInfo(dist.get_rank(), int(os.environ.get("LOCAL_RANK", dist.get_rank())), dist.get_world_size())


def setup_distributed(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Returns the layout and the device this process should use: under ``torchrun`` on CUDA that is
    ``cuda:LOCAL_RANK`` (one GPU per process). Without ``WORLD_SIZE > 1`` nothing happens.

    Args:
        device: the device type asked for (``cuda`` selects NCCL, anything else gloo).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return dist_info(), device
    if not dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            if local >= torch.cuda.device_count():
                raise RuntimeError(f"LOCAL_RANK={local} but only {torch.cuda.device_count()} GPUs are visible; "
                                   f"lower --nproc_per_node")
            device = torch.device("cuda", local)
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    info = dist_info()
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    return info, device


def cleanup_distributed() -> None:
    """Leave the process group (call once at the end of a ``torchrun`` job)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum a few floats over all processes (identity in a single process)."""
    if not dist_info().distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def all_gather_object(obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order (``[obj]`` in a single process)."""
    info = dist_info()
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if dist_info().distributed:
        dist.barrier()
