"""Chapter 6: data-parallel training (DDP over gloo, launched with torchrun) equals one process.

The test launches this file as a script under ``torchrun --nproc_per_node 2``: two CPU processes, each
with half of every micro-batch, gradient accumulation with ``no_sync``, and a stop-and-resume half-way.
Their final weights must match a single process trained on the combined batches.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from tfmcourse import GPT, GPTConfig
from tfmcourse.train import LoaderBatches, TrainConfig, Trainer, load_checkpoint, setup_distributed

pytestmark = pytest.mark.ch06

STEPS, ACCUM, PER_RANK = 6, 2, 4


def build(out_dir: str | None, batch_size: int, rank: int = 0, world: int = 1) -> Trainer:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=13, block_size=8, n_layers=1, n_heads=2, d_model=16))
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(*torch.randint(0, 13, (2, 48, 8), generator=g))  # 48 windows: epochs roll over
    cfg = TrainConfig(steps=STEPS, batch_size=batch_size, grad_accum=ACCUM, lr=1e-2, warmup_steps=2, log_every=1,
                      eval_every=100, out_dir=out_dir, progress=False)
    return Trainer(model, LoaderBatches(data, batch_size, seed=4, rank=rank, world_size=world), cfg, device="cpu")


def worker(out: Path) -> None:
    """Runs in each torchrun process."""
    torch.set_num_threads(1)
    info, _ = setup_distributed(torch.device("cpu"))
    assert info.world_size == 2, "launch with torchrun --nproc_per_node 2"
    first = build(str(out / "run"), PER_RANK, info.rank, info.world_size)
    first.fit(stop_after=STEPS // 2)
    trainer = build(str(out / "run"), PER_RANK, info.rank, info.world_size)
    calls = []

    def counting_allreduce(state, bucket):  # count gradient all-reduces: one per step, not per micro-batch
        calls.append(1)
        fut = torch.distributed.all_reduce(bucket.buffer().div_(info.world_size), async_op=True).get_future()
        return fut.then(lambda f: f.value()[0])

    trainer.ddp.register_comm_hook(None, counting_allreduce)
    trainer.fit(resume=True)
    params = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    torch.save({"params": params, "allreduce_calls": len(calls)}, out / f"rank{info.rank}.pt")


def test_two_gloo_processes_match_one_process_on_the_combined_batch(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           __file__, str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        single = build(None, PER_RANK * 2)  # one process, the two ranks' slices together
        single.fit()
    finally:
        torch.set_num_threads(n)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for name, p in single.model.state_dict().items():
        torch.testing.assert_close(ranks[0]["params"][name], ranks[1]["params"][name], rtol=0, atol=0)  # in sync
        torch.testing.assert_close(ranks[0]["params"][name], p, rtol=1e-4, atol=1e-5, msg=f"{name} differs")
    resumed_steps = STEPS - STEPS // 2
    assert ranks[0]["allreduce_calls"] == resumed_steps, "no_sync: one gradient all-reduce per optimizer step"

    # Rank 0 alone wrote the log and the checkpoint; the checkpoint carries both ranks' RNG states.
    ckpt = load_checkpoint(tmp_path / "run" / "ckpt.pt")
    assert ckpt["step"] == STEPS and ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == list(range(1, STEPS + 1))


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
