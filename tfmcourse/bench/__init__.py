"""``tfmcourse bench``: training throughput of the course's GPT and ViT, side by side with peers.

Every entry trains on random data for a few warm-up steps and then a few measured steps (forward,
backward, AdamW step; bf16 autocast and fused AdamW on CUDA). Peers measured in the same run:

* PyTorch's own ``nn.TransformerEncoderLayer`` built into the same-sized GPT / ViT (always);
* Hugging Face ``GPT2LMHeadModel`` with SDPA attention and timm's ``vit_base_patch16_224`` (when
  installed; random init, nothing downloaded).

It prints ms/step, tokens/s or images/s, model FLOP utilisation against the device's peak (where known)
and peak memory, then the ratio of each tfmcourse entry to each peer in the same mode. Timings live
here, never in pass/fail tests.
"""
from __future__ import annotations

import argparse
import gc as gc_module
import math
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn

from ..gpt import GPT, GPTConfig
from ..multihead import MultiHeadAttention
from ..optim import make_optimizer
from ..utils import get_device
from ..vit import ViT, ViTConfig
from .peers import HFGPT2, TimmViT, TorchGPT, TorchViT, installed

# Dense bf16 tensor-core peaks (FLOP/s) by device-name fragment, for MFU; the first match counts, so
# the PCIe/NVL variants come before the plain (SXM) name.
PEAK_BF16 = [("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989e12), ("H200", 989e12),
             ("B200", 2250e12), ("A100", 312e12), ("L40S", 362e12), ("L4", 121e12), ("A10", 125e12),
             ("4090", 165e12)]


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
    ms: float
    items_per_s: float
    mfu: float | None
    peak_mem_gb: float | None
    spread: float = 0.0  # (slowest - fastest round) / median step time


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
    """Dense bf16 peak FLOP/s of a GPU from its name (``torch.cuda.get_device_name()``), or None if unknown."""
    return next((flops for fragment, flops in PEAK_BF16 if fragment in device_name), None)


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
    step: Callable[[], None]
    n_items: int
    resident: int  # bytes the entry keeps between steps (weights, optimizer state, data)
    times: list[float]
    peak: int = 0


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
    if entry.family == "gpt":
        B, n_items = batch[0], batch[0] * gc.block_size
        x = torch.randint(0, gc.vocab_size, (B, gc.block_size), device=device)
        y = torch.randint(0, gc.vocab_size, (B, gc.block_size), device=device)
    else:
        B = n_items = batch[1]
        x = torch.randn(B, vc.in_chans, vc.image_size, vc.image_size, device=device)
        y = torch.randint(0, vc.n_classes, (B,), device=device)

    def step() -> None:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            _, loss = model(x, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(warmup):  # includes compilation in "compiled" mode
        step()
    if cuda:
        torch.cuda.synchronize()
    resident = torch.cuda.memory_allocated() - before if cuda else 0
    return _Run(entry, step, n_items, resident, [])


def _time_chunk(run: _Run, steps: int, device: torch.device) -> None:
    """Time ``steps`` steps of one entry; record the mean step time and the entry's peak memory."""
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        run.step()
    if cuda:
        torch.cuda.synchronize()
    run.times.append((time.perf_counter() - t0) / steps)
    if cuda:  # the others' weights stay resident meanwhile: count only this entry's own memory
        run.peak = max(run.peak, run.resident + torch.cuda.max_memory_allocated() - base)


def measure_group(group: list[Entry], gc: GPTConfig, vc: ViTConfig, batch: tuple[int, int],
                  device: torch.device, steps: int, warmup: int, rounds: int,
                  amp: bool | None = None) -> list[Result]:
    """Measure entries that are compared with each other, interleaved.

    Every entry is built and warmed up first; then each round times ``steps / rounds`` steps of every
    entry in turn (starting with a different entry each round). A slow spell of a shared machine thus
    hits all entries alike, and the ratios stay fair. The step time is the median over rounds.
    ``amp`` (default: on CUDA) trains under bf16 autocast.
    """
    cuda = device.type == "cuda"
    amp = cuda if amp is None else amp
    runs = []
    for e in group:
        print(f"preparing {e.name} [{e.mode}] ...", flush=True)
        runs.append(_prepare(e, gc, vc, batch, device, warmup, amp))
    per_round = max(1, math.ceil(steps / rounds))
    for r in range(rounds):
        for i in range(len(runs)):
            _time_chunk(runs[(r + i) % len(runs)], per_round, device)
    peak = peak_bf16_flops(torch.cuda.get_device_name()) if cuda else None
    results = []
    for run in runs:
        ms = statistics.median(run.times) * 1e3
        rate = run.n_items / (ms / 1e3)
        mfu = rate * flops_per_item(run.entry.family, gc, vc) / peak if peak else None
        spread = (max(run.times) - min(run.times)) / statistics.median(run.times)
        results.append(Result(run.entry, ms, rate, mfu, run.peak / 2**30 if cuda else None, spread))
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
                      ("HF GPT2LMHeadModel (sdpa)", "transformers", lambda: HFGPT2(gc))],
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


def report(results: list[Result], device: torch.device) -> str:
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    lines = [f"device: {name}   torch {torch.__version__}", ""]
    hdr = f"{'model':<34} {'mode':<18} {'ms/step':>9} {'spread':>7} {'items/s':>16} {'MFU':>6} {'peak GB':>8}"
    lines += [hdr, "-" * len(hdr)]
    for r in results:
        unit = "tok/s" if r.entry.family == "gpt" else "img/s"
        mfu = f"{100 * r.mfu:5.1f}%" if r.mfu is not None else "   n/a"
        mem = f"{r.peak_mem_gb:8.2f}" if r.peak_mem_gb is not None else "     n/a"
        lines.append(f"{r.entry.name:<34} {r.entry.mode:<18} {r.ms:9.1f} {100 * r.spread:6.1f}% "
                     f"{r.items_per_s:>10,.0f} {unit} {mfu} {mem}")
    lines += ["", "ratios (throughput of tfmcourse / peer, same mode; > 1 means tfmcourse is faster):"]
    for ours in (r for r in results if r.entry.ours and "manual" not in r.entry.mode):
        for peer in (r for r in results if not r.entry.ours and r.entry.family == ours.entry.family):
            if peer.entry.mode == ours.entry.mode or {peer.entry.mode, ours.entry.mode} == {"eager", "compiled"}:
                lines.append(f"  {ours.entry.name} [{ours.entry.mode}] / {peer.entry.name} [{peer.entry.mode}]: "
                             f"{ours.items_per_s / peer.items_per_s:5.2f}x")
        manual = next((r for r in results if r.entry.family == ours.entry.family and "manual" in r.entry.mode), None)
        if manual is not None and ours.entry.mode == "eager":
            lines.append(f"  {ours.entry.name}: manual (teaching) attention costs "
                         f"{ours.items_per_s / manual.items_per_s:5.2f}x the fused path's time")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tfmcourse bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--small", action="store_true", help="CPU-sized models (default on machines without CUDA)")
    p.add_argument("--full", action="store_true", help="GPT-2-small / ViT-B/16 sizes even without CUDA")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    p.add_argument("--steps", type=int, default=None, help="measured steps per model (default 20 on GPU, 15 on CPU)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 5 on GPU, 3 on CPU)")
    p.add_argument("--rounds", type=int, default=None,
                   help="interleaved rounds the measured steps are split into (default 4 on GPU, 5 on CPU)")
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
    steps, warmup = a.steps or (20 if cuda else 15), a.warmup or (5 if cuda else 3)
    rounds = max(1, min(steps, a.rounds or (4 if cuda else 5)))
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    groups: dict[tuple[str, str], list[Entry]] = {}  # entries compared with each other run interleaved
    for e in entries(gc, vc, modes, a.models.split(","), not a.no_peers):
        groups.setdefault((e.family, e.mode.split("/")[0]), []).append(e)
    results = []
    for group in groups.values():
        results += measure_group(group, gc, vc, (bg, bv), device, steps, warmup, rounds)
    print()
    print(f"sizes: GPT {gc.n_layers}L/{gc.n_heads}H/{gc.d_model}d ctx {gc.block_size} batch {bg}; "
          f"ViT {vc.n_layers}L/{vc.n_heads}H/{vc.d_model}d {vc.image_size}px/{vc.patch_size} batch {bv}; "
          f"{steps} measured steps in {rounds} interleaved rounds after {warmup} warm-up")
    print(report(results, device))
    if a.json:
        write_json(a.json, results, device, dict(gpt=asdict(gc), vit=asdict(vc), gpt_batch=bg, vit_batch=bv,
                                                 steps=steps, warmup=warmup, rounds=rounds))
    return 0


def write_json(path: str, results: list[Result], device: torch.device, setup: dict) -> None:
    """The run as JSON, for keeping a measured table next to the code (e.g. one file per GPU model)."""
    import json
    import platform

    rows = [{"model": r.entry.name, "family": r.entry.family, "mode": r.entry.mode, "ours": r.entry.ours,
             "ms_per_step": r.ms, "items_per_s": r.items_per_s, "mfu": r.mfu, "peak_mem_gb": r.peak_mem_gb,
             "spread": r.spread} for r in results]
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    with open(path, "w") as f:
        json.dump({"device": name, "torch": torch.__version__, "python": platform.python_version(),
                   "setup": setup, "results": rows}, f, indent=1)
