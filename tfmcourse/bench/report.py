"""The printed table and the JSON record of a ``tfmcourse bench`` run."""
from __future__ import annotations

import json
import platform
import statistics
from typing import TYPE_CHECKING

import torch

from .stats import Ratio, paired_ratio

if TYPE_CHECKING:
    from . import Result

__all__ = ["device_name", "ratios", "report", "write_json"]


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name()
    n = torch.get_num_threads()
    return f"CPU ({n} thread{'s' * (n != 1)})"


def ratios(results: list[Result]) -> list[tuple[str, str, Ratio]]:
    """``(kind, label, ratio)`` for every comparison the run supports.

    ``peer``: throughput of a tfmcourse entry / a peer timed in the same rounds (same family and mode).
    ``manual``: step time of the written-out attention / the fused path (same rounds). ``compile``:
    eager / compiled step time of one model; those were timed in separate groups, so the ratio is of
    medians and its interval only spans the two medians' intervals.
    """
    out = []
    for ours in (r for r in results if r.entry.ours and "manual" not in r.entry.mode):
        for peer in results:
            if not peer.entry.ours and peer.entry.family == ours.entry.family and peer.entry.mode == ours.entry.mode:
                out.append(("peer", f"{ours.entry.name} / {peer.entry.name} [{ours.entry.mode}]",
                            paired_ratio(peer.times, ours.times)))
        manual = next((r for r in results if r.entry.family == ours.entry.family and "manual" in r.entry.mode), None)
        if manual is not None and ours.entry.mode == "eager":
            out.append(("manual", f"{ours.entry.name}: written-out attention / fused attention step time",
                        paired_ratio(manual.times, ours.times)))
    for eager in (r for r in results if r.entry.mode == "eager"):
        comp = next((r for r in results if r.entry.mode == "compiled" and r.entry.name == eager.entry.name), None)
        if comp is not None:
            out.append(("compile", f"{eager.entry.name}: eager / compiled step time",
                        Ratio(eager.ms / comp.ms, eager.ci[0] / comp.ci[1], eager.ci[1] / comp.ci[0])))
    return out


def report(results: list[Result], device: torch.device, load: tuple[float, float, int] | None = None) -> str:
    """The table of entries, then the ratios; ``load`` = (load average at start, at end, cores)."""
    clock = results[0].clock if results else "wall"
    lines = [f"device: {device_name(device)}   torch {torch.__version__}   "
             f"timing: {'process CPU time' if clock == 'cpu' else 'wall time'}"]
    if load is not None:
        before, after, cores = load
        lines.append(f"load average: {before:.1f} at start, {after:.1f} at end, on {cores} cores")
        if max(before, after) > cores:
            lines.append("warning: the machine is busy (load average above its cores); absolute times are "
                         "inflated" + ("; CPU time on one thread and paired rounds keep the ratios fair, "
                                       "and the intervals say how far" if clock == "cpu" else ""))
    lines.append("")
    hdr = (f"{'model':<34} {'mode':<18} {'ms/step':>9} {'spread':>7} {'wall ms':>8} {'items/s':>16} "
           f"{'MFU':>6} {'peak GB':>8} {'loss@0':>7}")
    lines += [hdr, "-" * len(hdr)]
    for r in results:
        unit = "tok/s" if r.entry.family == "gpt" else "img/s"
        mfu = f"{100 * r.mfu:5.1f}%" if r.mfu is not None else "   n/a"
        mem = f"{r.peak_mem_gb:8.2f}" if r.peak_mem_gb is not None else "     n/a"
        lines.append(f"{r.entry.name:<34} {r.entry.mode:<18} {r.ms:9.1f} {100 * r.spread:6.1f}% {r.wall_ms:8.1f} "
                     f"{r.items_per_s:>10,.0f} {unit} {mfu} {mem} {r.loss0:7.3f}")
    lines += ["", "spread: width of the 95 % interval of the median step time, relative to it. "
              "loss@0: loss before any update (about ln(vocab) or ln(classes) for a healthy start)."]
    found = ratios(results)
    titles = {"peer": "tfmcourse / peer throughput, timed in the same rounds (> 1: tfmcourse is faster):",
              "manual": "teaching path (written-out attention) / fused path, step time:",
              "compile": "torch.compile: eager / compiled step time of the same model (separate groups, not paired):"}
    verdicts = {"peer": ("tfmcourse faster", "peer faster"), "manual": ("manual slower", "manual faster"),
                "compile": ("compiled faster", "compiled slower")}
    for kind, title in titles.items():
        rows = [(label, r) for k, label, r in found if k == kind]
        if rows:
            lines += ["", title]
            lines += [f"  {label}: {r}  {r.verdict(*verdicts[kind])}" for label, r in rows]
    lines.append("  [lo-hi]: 95 % interval of the median per-round ratio; 'tie' when it holds 1.")
    return "\n".join(lines)


def write_json(path: str, results: list[Result], device: torch.device, load: tuple[float, float, int],
               setup: dict) -> None:
    """The run as JSON, for keeping a measured table next to the code (e.g. one file per GPU model)."""
    rows = [{"model": r.entry.name, "family": r.entry.family, "mode": r.entry.mode, "ours": r.entry.ours,
             "ms_per_step": r.ms, "wall_ms_per_step": r.wall_ms, "clock": r.clock, "items_per_s": r.items_per_s,
             "mfu": r.mfu, "peak_mem_gb": r.peak_mem_gb, "spread": r.spread, "loss0": r.loss0,
             "round_times_s": r.times, "median_s": statistics.median(r.times)} for r in results]
    comparisons = [{"kind": k, "label": label, "ratio": r.value, "lo": r.lo, "hi": r.hi, "tie": r.tie}
                   for k, label, r in ratios(results)]
    with open(path, "w") as f:
        json.dump({"device": device_name(device), "torch": torch.__version__, "python": platform.python_version(),
                   "load_average": {"start": load[0], "end": load[1], "cores": load[2]}, "setup": setup,
                   "results": rows, "ratios": comparisons}, f, indent=1)
