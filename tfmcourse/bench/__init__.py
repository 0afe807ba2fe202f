"""``tfmcourse bench``: training throughput of the course's GPT and ViT, side by side with peers.

Every entry trains on the same random batch for a few warm-up steps and then the measured steps
(forward, backward, AdamW step; bf16 autocast and fused AdamW on CUDA). Peers measured in the same run:

* PyTorch's own ``nn.TransformerEncoderLayer`` built into the same-sized GPT / ViT (always);
* Hugging Face ``GPT2LMHeadModel`` with SDPA attention, with its default ``gelu_new`` activation and with
  the fused ``gelu_pytorch_tanh``, and timm's ``vit_base_patch16_224`` (when installed; random init at
  tfmcourse's scale, nothing downloaded).

It prints ms/step, tokens or images per second, model FLOP utilisation against the device's peak (where
known), peak memory and each entry's loss at step 0 (about ln(classes) for a healthy start), then the
ratio of each tfmcourse entry to each peer in the same mode, with an interval, or "tie" where the
interval holds 1. On a CPU it times the process's CPU time on one thread (other processes on a shared
machine then cost far less than wall time), in many short interleaved rounds. Timings live here, never
in pass/fail tests.
"""
from __future__ import annotations

import argparse
import gc as gc_module
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import nn

from ..gpt import GPT, GPTConfig
from ..multihead import MultiHeadAttention
from ..optim import make_optimizer
from ..utils import get_device
from ..vit import ViT, ViTConfig
from .peers import HFGPT2, TimmViT, TorchGPT, TorchViT, installed
from .report import report, write_json
from .stats import median_ci

# Dense bf16 tensor-core peaks (FLOP/s) by the exact name torch.cuda.get_device_name() reports; a GPU
# that is not listed gets no MFU (or pass --peak-tflops).
PEAK_BF16 = {
    "NVIDIA H100 80GB HBM3": 989e12, "NVIDIA H100 PCIe": 756e12, "NVIDIA H100 NVL": 835e12,
    "NVIDIA H200": 989e12, "NVIDIA H200 NVL": 835e12, "NVIDIA B200": 2250e12,
    "NVIDIA A100-SXM4-80GB": 312e12, "NVIDIA A100-SXM4-40GB": 312e12, "NVIDIA A100-PCIE-40GB": 312e12,
    "NVIDIA A100 80GB PCIe": 312e12, "NVIDIA L40S": 362e12, "NVIDIA L40": 181e12, "NVIDIA L4": 121e12,
    "NVIDIA A10": 125e12, "NVIDIA GeForce RTX 4090": 165e12,
}


@dataclass
class Entry:
    name: str
    family: str  # "gpt" or "vit"
    mode: str  # "eager", "compiled", "eager/manual-attn"
    ours: bool
    build: Callable[[], nn.Module]


@dataclass
class Result:
    entry: Entry
    ms: float  # median step time on the measuring clock
    items_per_s: float
    mfu: float | None
    peak_mem_gb: float | None
    spread: float = 0.0  # width of the median's 95 % interval / median
    loss0: float = math.nan  # loss at step 0, before any update
    clock: str = "wall"  # "cpu" (process CPU time) or "wall"
    times: list[float] = field(default_factory=list)  # per-round step times (s) on that clock
    wall_ms: float = math.nan  # median wall-clock step time, for reference
    ci: tuple[float, float] = (math.nan, math.nan)  # 95 % interval of the median step time (s)


def _manual_attention(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, MultiHeadAttention):
            m.fused = False
    return model


# ------------------------------------------------------------------------------------------ measuring
def sizes(small: bool) -> tuple[GPTConfig, ViTConfig, int, int]:
    """GPT-2 small / ViT-B/16 with their batch sizes, or a CPU-sized version of each."""
    if small:
        return (GPTConfig(vocab_size=4096, block_size=128, n_layers=4, n_heads=4, d_model=256),
                ViTConfig(image_size=64, patch_size=8, n_classes=100, d_model=256, n_layers=4, n_heads=4), 8, 16)
    return GPTConfig(), ViTConfig(), 16, 128


def peak_bf16_flops(device_name: str) -> float | None:
    """Dense bf16 peak FLOP/s of a GPU from its exact name (``torch.cuda.get_device_name()``), or None."""
    return PEAK_BF16.get(device_name.strip())


def flops_per_item(family: str, gc: GPTConfig, vc: ViTConfig) -> float:
    """Training FLOPs per token (GPT) or image (ViT): 6 x matmul params + attention (PaLM appendix B)."""
    if family == "gpt":
        n = 12 * gc.n_layers * gc.d_model ** 2 + gc.vocab_size * gc.d_model
        return 6 * n + 12 * gc.n_layers * gc.d_model * gc.block_size
    t = (vc.image_size // vc.patch_size) ** 2 + 1
    n = 12 * vc.n_layers * vc.d_model ** 2 + vc.in_chans * vc.patch_size ** 2 * vc.d_model
    return t * (6 * n + 12 * vc.n_layers * vc.d_model * t)


@dataclass
class _Run:
    """One entry ready to train: model, optimizer, a fixed random batch and what was measured so far."""

    entry: Entry
    step: Callable[[], float]
    n_items: int
    resident: int  # bytes the entry keeps between steps (weights, optimizer state, data)
    loss0: float
    cpu: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    peak: int = 0


def _batch(family: str, gc: GPTConfig, vc: ViTConfig, batch: tuple[int, int], device: torch.device):
    """The same random batch for every entry of a family (its own generator: model builds use the global one)."""
    g = torch.Generator().manual_seed(1234)
    if family == "gpt":
        B = batch[0]
        x = torch.randint(0, gc.vocab_size, (B, gc.block_size), generator=g)
        y = torch.randint(0, gc.vocab_size, (B, gc.block_size), generator=g)
        return x.to(device), y.to(device), B * gc.block_size
    B = batch[1]
    x = torch.randn(B, vc.in_chans, vc.image_size, vc.image_size, generator=g)
    y = torch.randint(0, vc.n_classes, (B,), generator=g)
    return x.to(device), y.to(device), B


def _prepare(entry: Entry, gc: GPTConfig, vc: ViTConfig, batch: tuple[int, int], device: torch.device,
             warmup: int, amp: bool) -> _Run:
    cuda = device.type == "cuda"
    before = torch.cuda.memory_allocated() if cuda else 0
    torch.manual_seed(0)
    model = entry.build().to(device)
    model.train()
    opt = make_optimizer(model, lr=1e-4, weight_decay=0.1)
    if entry.mode == "compiled":
        model = torch.compile(model)
    x, y, n_items = _batch(entry.family, gc, vc, batch, device)

    def step() -> torch.Tensor:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            _, loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    loss0 = step().item()  # also the first warm-up step (and compilation in "compiled" mode)
    for _ in range(warmup - 1):
        step()
    if cuda:
        torch.cuda.synchronize()
    resident = torch.cuda.memory_allocated() - before if cuda else 0
    return _Run(entry, step, n_items, resident, loss0)


def _time_chunk(run: _Run, steps: int, device: torch.device) -> None:
    """Time ``steps`` steps of one entry on both clocks; record the mean step times and the peak memory."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(steps):
        run.step()
    if cuda:
        torch.cuda.synchronize()
    run.wall.append((time.perf_counter() - w0) / steps)
    run.cpu.append((time.process_time() - c0) / steps)
    if cuda:  # the others' weights stay resident meanwhile: count only this entry's own memory
        run.peak = max(run.peak, run.resident + torch.cuda.max_memory_allocated() - base)


def measure_group(group: list[Entry], gc: GPTConfig, vc: ViTConfig, batch: tuple[int, int],
                  device: torch.device, steps: int, warmup: int, rounds: int,
                  amp: bool | None = None, clock: str | None = None, peak_flops: float | None = None,
                  failed: list[str] | None = None) -> list[Result]:
    """Measure entries that are compared with each other, interleaved.

    Every entry is built and warmed up first; then each round times ``steps / rounds`` steps of every
    entry in turn (starting with a different entry each round). A slow spell of a shared machine thus
    hits all entries of a round alike, and the per-round ratios stay fair. The step time is the median
    over rounds. ``amp`` (default: on CUDA) trains under bf16 autocast; ``clock`` is ``"cpu"`` (process
    CPU time; the default on a CPU) or ``"wall"`` (the default on CUDA, where the GPU does the work).
    An entry that fails to build, compile or train is left out, with a line in ``failed`` (if given), so
    one peer's problem does not cost the whole run.
    """
    cuda = device.type == "cuda"
    amp = cuda if amp is None else amp
    clock = clock or ("wall" if cuda else "cpu")
    runs = []
    for e in group:
        print(f"preparing {e.name} [{e.mode}] ...", flush=True)
        try:
            runs.append(_prepare(e, gc, vc, batch, device, warmup, amp))
        except Exception as err:  # a peer's library version, a compile failure, out of memory
            msg = f"{e.name} [{e.mode}] not measured: {type(err).__name__}: {str(err).splitlines()[0][:200]}"
            print(msg, flush=True)
            (failed if failed is not None else []).append(msg)
            if cuda:
                torch.cuda.empty_cache()
    per_round = max(1, math.ceil(steps / rounds))
    for r in range(rounds):
        for i in range(len(runs)):
            _time_chunk(runs[(r + i) % len(runs)], per_round, device)
    peak = peak_flops or (peak_bf16_flops(torch.cuda.get_device_name()) if cuda else None)
    results = []
    for run in runs:
        times = run.cpu if clock == "cpu" else run.wall
        med = statistics.median(times)
        lo, hi = median_ci(times)
        rate = run.n_items / med
        mfu = rate * flops_per_item(run.entry.family, gc, vc) / peak if peak else None
        results.append(Result(run.entry, med * 1e3, rate, mfu, run.peak / 2**30 if cuda else None, (hi - lo) / med,
                              run.loss0, clock, list(times), statistics.median(run.wall) * 1e3, (lo, hi)))
    del runs
    gc_module.collect()
    if cuda:
        torch.cuda.empty_cache()
    return results


def entries(gc: GPTConfig, vc: ViTConfig, modes: list[str], families: list[str], peers: bool) -> list[Entry]:
    """What to measure: each family's tfmcourse model and its installed peers in every mode, plus the
    tfmcourse models with the manual (teaching) attention path in eager mode."""
    ours = {"gpt": ("tfmcourse GPT", lambda: GPT(gc)), "vit": ("tfmcourse ViT", lambda: ViT(vc))}
    others = {"gpt": [("torch nn.TransformerEncoder GPT", None, lambda: TorchGPT(gc)),
                      ("HF GPT2LMHeadModel (gelu_new)", "transformers", lambda: HFGPT2(gc)),
                      ("HF GPT2LMHeadModel (fused gelu)", "transformers", lambda: HFGPT2(gc, "gelu_pytorch_tanh"))],
              "vit": [("torch nn.TransformerEncoder ViT", None, lambda: TorchViT(vc)),
                      ("timm vit_base_patch16_224", "timm", lambda: TimmViT(vc))]}
    fams = [f for f in ("gpt", "vit") if f in families]
    out: list[Entry] = []
    for mode in modes:
        for f in fams:
            out.append(Entry(ours[f][0], f, mode, True, ours[f][1]))
            out += [Entry(name, f, mode, False, build) for name, lib, build in others[f]
                    if peers and (lib is None or installed(lib))]
    if "eager" in modes:  # what the teaching path costs
        out += [Entry(ours[f][0], f, "eager/manual-attn", True, lambda build=ours[f][1]: _manual_attention(build()))
                for f in fams]
    return out


def main(argv: list[str] | None = None) -> int:
    from ..cli import plain
    p = argparse.ArgumentParser(prog="tfmcourse bench", description=plain(__doc__.split("\n\n")[0]))
    p.add_argument("--small", action="store_true", help="CPU-sized models (default on machines without CUDA)")
    p.add_argument("--full", action="store_true", help="GPT-2-small / ViT-B/16 sizes even without CUDA")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    p.add_argument("--steps", type=int, default=None, help="measured steps per model (default 20 on GPU, 24 on CPU)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 5 on GPU, 3 on CPU)")
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaved rounds the measured steps are split into (default 10 on GPU, 12 on CPU)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default on a CPU: 1, so that CPU time measures the work)")
    p.add_argument("--clock", choices=("cpu", "wall"), default=None,
                   help="what to time: process CPU time (default on a CPU) or wall time (default on CUDA)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the GPU's dense bf16 peak, for MFU on a GPU the built-in table does not list")
    p.add_argument("--models", default="gpt,vit", help="comma-separated: gpt, vit")
    p.add_argument("--modes", default=None, help="eager,compiled (default: both on CUDA, eager on CPU)")
    p.add_argument("--no-peers", action="store_true", help="measure tfmcourse only")
    p.add_argument("--json", metavar="PATH", help="also write the results (device, versions, every row) as JSON")
    a = p.parse_args(argv)
    device = get_device(a.device)
    cuda = device.type == "cuda"
    small = a.small or (not cuda and not a.full)
    gc, vc, bg, bv = sizes(small)
    modes = a.modes.split(",") if a.modes else (["eager", "compiled"] if cuda else ["eager"])
    steps, warmup = a.steps or (20 if cuda else 24), a.warmup or (5 if cuda else 3)
    rounds = max(1, min(steps, a.rounds or (10 if cuda else 12)))
    clock = a.clock or ("wall" if cuda else "cpu")
    threads = torch.get_num_threads()
    try:
        if a.threads or not cuda:
            torch.set_num_threads(a.threads or 1)
        _run(a, device, gc, vc, (bg, bv), modes, steps, warmup, rounds, clock)
    finally:
        torch.set_num_threads(threads)  # the caller's setting (a notebook, a test) stays as it was
    return 0


def _run(a: argparse.Namespace, device: torch.device, gc: GPTConfig, vc: ViTConfig, batch: tuple[int, int],
         modes: list[str], steps: int, warmup: int, rounds: int, clock: str) -> None:
    cuda = device.type == "cuda"
    bg, bv = batch
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    load_before = os.getloadavg()[0]
    groups: dict[tuple[str, str], list[Entry]] = {}  # entries compared with each other run interleaved
    for e in entries(gc, vc, modes, a.models.split(","), not a.no_peers):
        groups.setdefault((e.family, e.mode.split("/")[0]), []).append(e)
    results: list[Result] = []
    failed: list[str] = []
    for group in groups.values():
        results += measure_group(group, gc, vc, (bg, bv), device, steps, warmup, rounds, clock=clock,
                                 peak_flops=a.peak_tflops * 1e12 if a.peak_tflops else None, failed=failed)
    load = (load_before, os.getloadavg()[0], os.cpu_count() or 1)
    print()
    print(f"sizes: GPT {gc.n_layers}L/{gc.n_heads}H/{gc.d_model}d ctx {gc.block_size} batch {bg}; "
          f"ViT {vc.n_layers}L/{vc.n_heads}H/{vc.d_model}d {vc.image_size}px/{vc.patch_size} batch {bv}; "
          f"{steps} measured steps in {rounds} interleaved rounds after {warmup} warm-up")
    print(report(results, device, load))
    for msg in failed:
        print(msg)
    if a.json:
        write_json(a.json, results, device, load, dict(gpt=asdict(gc), vit=asdict(vc), gpt_batch=bg, vit_batch=bv,
                                                       steps=steps, warmup=warmup, rounds=rounds, clock=clock,
                                                       threads=torch.get_num_threads()))
