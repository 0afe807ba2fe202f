"""What attention and the FFN cost: FLOP and parameter formulas, small timers and memory meters, plots.

The formulas count a multiply-add as 2 FLOPs and keep only the matrix products (biases, softmax and
norms are lower order). For one layer with sequence length ``T`` (keys ``S``), width ``d`` and FFN
width ``d_ff`` (forward pass):

=====================  ==========================  ======================
part                   FLOPs                       parameters
=====================  ==========================  ======================
Q, K, V, O projections ``4Td^2 + 4Sd^2``           ``4d^2 (+4d)``
scores ``QK^T``        ``2TSd``                    0
weighted sum ``AV``    ``2TSd``                    0
FFN (ReLU/GELU)        ``4Td d_ff``                ``2 d d_ff (+d_ff+d)``
FFN (SwiGLU)           ``6Td d_ff``                ``3 d d_ff``
=====================  ==========================  ======================

The measuring helpers (:func:`time_call`, :func:`peak_tensor_memory`) are for illustration in the book:
timings depend on the machine and live in benchmarks, never in pass/fail tests.
"""
from __future__ import annotations

import statistics
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

__all__ = ["layer_flops", "layer_params", "crossover_seq_len", "time_call", "peak_tensor_memory",
           "plot_scaling", "plot_flops_vs_seq_len", "plot_flop_shares", "COMPONENTS"]

COMPONENTS = ("Q, K, V, O projections", "scores QKᵀ", "weighted sum AV", "FFN")
_COLOURS = dict(zip(COMPONENTS, ("#4c72b0", "#dd8452", "#c44e52", "#55a868")))


def layer_flops(T: int, d_model: int, d_ff: int | None = None, *, S: int | None = None,
                swiglu: bool = False) -> dict[str, float]:
    """Forward FLOPs of one Transformer layer, by part (see the module docstring).

    Args:
        T: number of queries (tokens in the sequence).
        d_model: model width ``d``.
        d_ff: FFN hidden width (default ``4 * d_model``).
        S: number of keys (default ``T``; differs for cross-attention or a KV cache).
        swiglu: the FFN is SwiGLU (three matrices) instead of two.

    Returns:
        a dict over :data:`COMPONENTS`.
    """
    d, S = d_model, T if S is None else S
    d_ff = 4 * d if d_ff is None else d_ff
    return {
        COMPONENTS[0]: 2.0 * (2 * T + 2 * S) * d * d,
        COMPONENTS[1]: 2.0 * T * S * d,
        COMPONENTS[2]: 2.0 * T * S * d,
        COMPONENTS[3]: (6.0 if swiglu else 4.0) * T * d * d_ff,
    }


def layer_params(d_model: int, d_ff: int | None = None, *, bias: bool = True, swiglu: bool = False) -> dict[str, int]:
    """Parameters of one layer's attention (``qkv`` + ``proj``) and FFN; norms are left out."""
    d = d_model
    d_ff = 4 * d if d_ff is None else d_ff
    attn = 4 * d * d + (4 * d if bias else 0)
    ffn = 3 * d * d_ff if swiglu else 2 * d * d_ff + ((d_ff + d) if bias else 0)
    return {"attention": attn, "FFN": ffn}


def crossover_seq_len(d_model: int, d_ff: int | None = None, *, swiglu: bool = False) -> dict[str, float]:
    """Sequence lengths where attention's ``T^2`` terms (``QK^T`` + ``AV`` = ``4T^2 d``) catch up.

    Returns ``T`` where they equal the projections, the FFN, and projections + FFN together.
    """
    d_ff = 4 * d_model if d_ff is None else d_ff
    ffn_per_token = (6.0 if swiglu else 4.0) * d_model * d_ff
    proj_per_token = 8.0 * d_model * d_model
    per_t = 4.0 * d_model  # quadratic FLOPs per token per unit of T
    return {"projections": proj_per_token / per_t, "FFN": ffn_per_token / per_t,
            "projections + FFN": (proj_per_token + ffn_per_token) / per_t}


def time_call(fn: Callable[[], Any], *, repeat: int = 5, warmup: int = 1, min_time: float = 0.0,
              reduce: str = "min") -> float:
    """Wall time of ``fn()`` in seconds: the minimum (or ``reduce="median"``) over ``repeat`` samples.

    The minimum is the run least disturbed by other work on the machine, the usual choice for
    micro-benchmarks. ``min_time`` > 0 repeats ``fn`` inside each sample until the sample lasts about
    that long, which steadies the timing of very fast calls.
    """
    if reduce not in ("min", "median"):
        raise ValueError(f"reduce must be 'min' or 'median', got {reduce!r}")
    for _ in range(warmup):
        fn()
    number = 1
    if min_time > 0:
        t0 = time.perf_counter()
        fn()
        one = max(time.perf_counter() - t0, 1e-7)
        number = max(1, int(min_time / one))
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return min(samples) if reduce == "min" else statistics.median(samples)


class _TensorMemory(TorchDispatchMode):
    """Track the bytes held by tensors that ops create (not views of existing storage)."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = 0
        self.peak = 0
        self.ops: list[str] = []

    def _free(self, ptr: int) -> None:
        self.current -= self.live.pop(ptr, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops.append(func.overloadpacket.__name__)
        seen = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs))
                if isinstance(t, torch.Tensor)}
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            ptr, nbytes = storage.data_ptr(), storage.nbytes()
            if nbytes == 0 or ptr in seen or ptr in self.live:
                continue
            self.live[ptr] = nbytes
            self.current += nbytes
            self.peak = max(self.peak, self.current)
            weakref.finalize(t, self._free, ptr)
        return out


def peak_tensor_memory(fn: Callable[[], Any]) -> tuple[Any, int, list[str]]:
    """Run ``fn()`` and measure the peak bytes held at once by the tensors its ops create.

    Inputs that exist before the call are not counted, nor is scratch memory a fused kernel uses
    internally (for the flash kernel that is a few small tiles). Use it under ``torch.no_grad()`` so
    autograd does not keep intermediates alive.

    Returns:
        ``(result, peak_bytes, op_names)`` where ``op_names`` lists the ATen ops that ran, in order.
    """
    mode = _TensorMemory()
    with mode:
        result = fn()
    return result, mode.peak, mode.ops


def plot_scaling(x: Sequence[float], series: Mapping[str, Sequence[float]], *, xlabel: str, ylabel: str,
                 title: str | None = None, logx: bool = True, logy: bool = True, ax=None, markers: bool = True):
    """Lines of ``series[name][i]`` against ``x[i]`` (log axes by default); returns the figure."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.2, 3.6))
    else:
        fig = ax.figure
    for name, ys in series.items():
        ax.plot(x, ys, marker="o" if markers else None, ms=4, label=name)
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_flops_vs_seq_len(d_model: int = 768, d_ff: int | None = None, *, seq_lens: Sequence[int] | None = None,
                          swiglu: bool = False):
    """Two panels: FLOPs per layer by part against ``T`` (log-log) and each part's share of the total."""
    seq_lens = list(seq_lens or [2 ** k for k in range(6, 17)])
    parts = {c: [layer_flops(T, d_model, d_ff, swiglu=swiglu)[c] for T in seq_lens] for c in COMPONENTS}
    cross = crossover_seq_len(d_model, d_ff, swiglu=swiglu)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.0))
    quad = [a + b for a, b in zip(parts[COMPONENTS[1]], parts[COMPONENTS[2]])]
    ax1.plot(seq_lens, parts[COMPONENTS[0]], label="projections (∝ T)", color=_COLOURS[COMPONENTS[0]], lw=2)
    ax1.plot(seq_lens, parts[COMPONENTS[3]], label=COMPONENTS[3] + " (∝ T)", color=_COLOURS[COMPONENTS[3]], lw=2)
    ax1.plot(seq_lens, quad, label="QKᵀ + AV (∝ T²)", color=_COLOURS[COMPONENTS[2]], lw=2)
    for T in cross.values():
        ax1.axvline(T, color="grey", lw=0.8, ls=":")
    # The crossovers are close together on a log axis: listed in one box (where the curves are not)
    # instead of a label on each dotted line.
    listed = "\n".join(f"{name}: {T:,.0f}" for name, T in cross.items())
    ax1.text(0.97, 0.04, "QKᵀ + AV equal (dotted, T):\n" + listed,
             transform=ax1.transAxes, ha="right", va="bottom", multialignment="left", color="dimgrey",
             bbox=dict(facecolor="white", edgecolor="0.8", boxstyle="round,pad=0.3"))
    ax1.set_xscale("log", base=2)
    ax1.set_yscale("log")
    ax1.set_xlabel("sequence length T")
    ax1.set_ylabel("forward FLOPs per layer")
    ax1.set_title(f"d_model = {d_model}: linear vs quadratic terms")
    ax1.legend(loc="upper left")
    ax1.grid(alpha=0.3)
    total = [sum(parts[c][i] for c in COMPONENTS) for i in range(len(seq_lens))]
    shares = [[parts[c][i] / total[i] for i in range(len(seq_lens))] for c in COMPONENTS]
    ax2.stackplot(seq_lens, *shares, labels=COMPONENTS, colors=[_COLOURS[c] for c in COMPONENTS], alpha=0.85)
    ax2.set_xscale("log", base=2)
    ax2.set_ylim(0, 1)
    ax2.set_xlim(seq_lens[0], seq_lens[-1])
    ax2.set_xlabel("sequence length T")
    ax2.set_ylabel("share of the layer's FLOPs")
    ax2.set_title("where the compute goes")
    ax2.legend(loc="lower left")
    fig.tight_layout()
    return fig


def plot_flop_shares(T: int, models: Mapping[str, dict], *, ax=None):
    """Horizontal stacked bars: each model's FLOP split at sequence length ``T``.

    ``models`` maps a name to keyword arguments of :func:`layer_flops` (``d_model``, ``d_ff``, ``swiglu``).
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(8.5, 1.1 + 0.45 * len(models)))
    else:
        fig = ax.figure
    names = list(models)
    for row, name in enumerate(names):
        f = layer_flops(T, **models[name])
        total = sum(f.values())
        left = 0.0
        for c in COMPONENTS:
            share = f[c] / total
            ax.barh(row, share, left=left, color=_COLOURS[c], label=c if row == 0 else None)
            if share > 0.07:
                ax.text(left + share / 2, row, f"{100 * share:.0f}%", ha="center", va="center",
                        color="white")
            left += share
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of one layer's forward FLOPs")
    ax.set_title(f"T = {T:,} tokens")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    fig.tight_layout()
    return fig
