"""Pictures for the FFN chapter: activation functions, who-influences-whom maps, ablation curves."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ACTIVATIONS", "plot_activations", "token_influence", "plot_token_influence", "plot_ablation"]

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "ReLU  max(0, x)": F.relu,
    "GELU  x·Φ(x)": F.gelu,
    "GELU (tanh approx.)": lambda x: F.gelu(x, approximate="tanh"),
    "SiLU / Swish  x·σ(x)": F.silu,
}


def plot_activations(lo: float = -4.0, hi: float = 4.0):
    """Three panels: the activations, their derivatives, and SwiGLU's gate ``silu(a) * b``."""
    x = torch.linspace(lo, hi, 401, requires_grad=True)
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(10.2, 3.6))
    styles = ["-", "-", ":", "--"]
    for (name, f), ls in zip(ACTIVATIONS.items(), styles):
        y = f(x)
        (g,) = torch.autograd.grad(y.sum(), x)
        ax1.plot(x.detach().numpy(), y.detach().numpy(), ls, label=name, lw=1.8)
        ax2.plot(x.detach().numpy(), g.numpy(), ls, label=name, lw=1.8)
    ax1.set_title("activation f(x)")
    ax2.set_title("slope f′(x):\nthe gradient it lets through")
    for ax in (ax1, ax2):
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(0, color="k", lw=0.5)
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
    ax1.legend(loc="upper left", handlelength=1.6)
    ax1.set_ylim(-1, hi)
    a = torch.linspace(lo, hi, 201)
    gate = F.silu(a)[:, None] * a[None, :]  # rows: gate input a, columns: up input b
    lim = gate.abs().max().item()
    im = ax3.imshow(gate.numpy(), origin="lower", extent=(lo, hi, lo, hi), cmap="RdBu_r", vmin=-lim, vmax=lim,
                    aspect="auto")
    ax3.set_xlabel("b = x·W_up")
    ax3.set_ylabel("a = x·W_gate")
    ax3.set_title("SwiGLU unit:\nsilu(a) · b")
    fig.colorbar(im, ax=ax3, fraction=0.046)
    fig.tight_layout()
    return fig


def token_influence(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """How much each output token depends on each input token: ``||∂y_t / ∂x_s||_F``.

    Args:
        fn: maps ``(T, C)`` (or ``(1, T, C)``) to the same shape.
        x: one sequence ``(T, C)``.

    Returns:
        ``(T, T)``: row ``t`` is output token ``t``, column ``s`` input token ``s``.
    """
    T, C = x.shape
    jac = torch.autograd.functional.jacobian(lambda inp: fn(inp[None])[0], x)  # (T, C, T, C)
    return jac.pow(2).sum(dim=(1, 3)).sqrt()


def plot_token_influence(maps: Mapping[str, Tensor], *, cell: float = 3.0):
    """One heatmap per entry of ``maps`` (each from :func:`token_influence`).

    Each row is divided by its largest entry, so a row shows which inputs matter most *to that output*.
    """
    n = len(maps)
    fig, axes = plt.subplots(1, n, figsize=(cell * n, cell + 0.3), squeeze=False)
    for ax, (name, m) in zip(axes[0], maps.items()):
        m = m.detach().float()
        ax.imshow((m / m.amax(dim=1, keepdim=True).clamp_min(1e-12)).numpy(), cmap="magma", vmin=0, vmax=1)
        ax.set_title(name)
        ax.set_xlabel("input token s")
        ax.set_ylabel("output token t")
        ticks = range(m.size(0))
        ax.set_xticks(ticks, [str(i) for i in ticks])
        ax.set_yticks(ticks, [str(i) for i in ticks])
    fig.tight_layout()
    return fig


def plot_ablation(losses: Mapping[str, Sequence[float]], acc_steps: Sequence[int],
                  accuracies: Mapping[str, Sequence[float]], *, baselines: Mapping[str, float] | None = None,
                  smooth: int = 20):
    """Training loss (moving average over ``smooth`` steps) and held-out accuracy of several models.

    ``baselines`` maps a label to an accuracy drawn as a dotted reference line (e.g. guessing).
    """
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.6, 3.8))
    for name, ls in losses.items():
        t = torch.tensor(ls, dtype=torch.float64)
        k = max(1, min(smooth, len(ls)))
        avg = torch.nn.functional.avg_pool1d(t[None, None], k, stride=1)[0, 0]
        ax1.plot(range(k - 1, len(ls)), avg.tolist(), label=name, lw=1.8)
    for (label, acc), colour in zip((baselines or {}).items(), ("grey", "black", "tab:purple")):
        ax2.axhline(acc, color=colour, ls=":", lw=1, label=label)
    ax1.set_xlabel("training step")
    ax1.set_ylabel("cross-entropy (moving average)")
    ax1.set_title("training loss")
    ax1.legend()
    ax1.grid(alpha=0.3)
    for name, acc in accuracies.items():
        ax2.plot(acc_steps, acc, marker="o", ms=3, label=name, lw=1.8)
    ax2.set_ylim(0, 1.02)
    ax2.set_xlabel("training step")
    ax2.set_ylabel("accuracy on held-out sequences")
    ax2.set_title("accuracy")
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    return fig
