"""Measurements and plots for chapter 2: gradients through deep stacks, and post-LN vs pre-LN training.

Everything here is small enough to run on a CPU in seconds; the book calls it and plots the result.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..blocks import EncoderBlock
from ..embedding import sinusoidal_encoding

__all__ = [
    "layer_input_grad_norms",
    "stack_grad_norms",
    "plot_grad_norms",
    "ToyStack",
    "progression_batch",
    "train_toy_stack",
    "update_sensitivity",
    "plot_loss_curves",
]


def layer_input_grad_norms(blocks: Sequence[EncoderBlock], x: Tensor, *, residual: bool = True,
                           norms: bool = True, seed: int = 0) -> list[float]:
    """Gradient norm arriving at the input of each block of a stack.

    The stack reuses each block's sub-layers (``attn``, ``ffn`` and, with ``norms``, ``norm1``/``norm2``):

    * ``residual=True``:  ``h = h + attn(norm1(h)); h = h + ffn(norm2(h))`` (a pre-LN block),
    * ``residual=False``: ``h = ffn(norm2(attn(norm1(h))))`` (the same functions, no identity path).

    The loss is ``(h_L * r).sum()`` for a fixed random ``r``, so every output direction gets a gradient.

    Returns:
        ``[‖∂loss/∂h_0‖, …, ‖∂loss/∂h_{L-1}‖]``, input of the first block first.
    """
    def ident(t: Tensor) -> Tensor:
        return t

    # A vanishing gradient passes through subnormal floats, which are very slow on CPUs: flush them to 0.
    torch.set_flush_denormal(True)
    try:
        h = x.detach().clone().requires_grad_()
        inputs = []
        for b in blocks:
            h.retain_grad()
            inputs.append(h)
            n1, n2 = (b.norm1, b.norm2) if norms else (ident, ident)
            if residual:
                h = h + b.attn(n1(h))
                h = h + b.ffn(n2(h))
            else:
                h = b.ffn(n2(b.attn(n1(h))))
        r = torch.randn(h.shape, generator=torch.Generator().manual_seed(seed), dtype=h.dtype)
        (h * r).sum().backward()
    finally:
        torch.set_flush_denormal(False)
    return [t.grad.norm().item() for t in inputs]


def stack_grad_norms(depth: int, *, residual: bool, norms: bool, d_model: int = 32, n_heads: int = 4,
                     seeds: Sequence[int] = (0, 1, 2), batch: int = 4, seq_len: int = 8) -> list[float]:
    """:func:`layer_input_grad_norms` of fresh ``depth``-block stacks, geometric mean over ``seeds``.

    Each seed draws new :class:`EncoderBlock` s (PyTorch's default initialisation) and a new
    ``(batch, seq_len, d_model)`` input. A layer whose gradient underflowed to 0 for any seed gets 0.
    """
    norms_per_seed = []
    for seed in seeds:
        torch.manual_seed(seed)
        blocks = [EncoderBlock(d_model, n_heads, 4 * d_model) for _ in range(depth)]
        x = torch.randn(batch, seq_len, d_model)
        norms_per_seed.append(layer_input_grad_norms(blocks, x, residual=residual, norms=norms, seed=seed))
    g = torch.tensor(norms_per_seed, dtype=torch.float64)  # (seeds, depth)
    mean = g.clamp_min(1e-300).log().mean(0).exp()
    return mean.masked_fill((g == 0).any(0), 0.0).tolist()


def plot_grad_norms(curves: Mapping[str, Sequence[float]], *, ax=None, title: str | None = None,
                    ylim: tuple[float, float] | None = None, xmax: int | None = None):
    """Log-scale gradient norm per layer, one line per entry of ``curves``. Returns the figure."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.2))
    styles = ("-o", "--s", "-^", "--v")
    for i, (name, vals) in enumerate(curves.items()):
        ax.semilogy(range(len(vals)), [max(v, 1e-30) for v in vals], styles[i % 4], ms=3, lw=1.4, label=name)
    ax.set_xlabel("layer (0 = input end)")
    ax.set_ylabel(r"$\|\partial L / \partial x_\ell\|$")
    if ylim:
        ax.set_ylim(*ylim)
    if xmax is not None:
        ax.set_xlim(-0.5, xmax - 0.5)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return ax.figure


class ToyStack(nn.Module):
    """Embedding + sinusoidal positions + ``n_layers`` causal :class:`EncoderBlock` s + linear head.

    ``norm_first=False`` is the original post-LN Transformer (no final norm, the last block's norm
    already normalises); ``norm_first=True`` is pre-LN with a final LayerNorm, as in GPT-2.

    Shapes:
        ``(B, T)`` token ids -> ``(B, T, vocab_size)`` logits.
    """

    def __init__(self, vocab_size: int, block_size: int, *, d_model: int = 32, n_heads: int = 4,
                 n_layers: int = 12, norm_first: bool = True) -> None:
        super().__init__()
        self.d_model = d_model
        self.emb = nn.Embedding(vocab_size, d_model)
        self.register_buffer("pe", sinusoidal_encoding(block_size, d_model), persistent=False)
        self.blocks = nn.ModuleList(EncoderBlock(d_model, n_heads, 4 * d_model, norm_first=norm_first)
                                    for _ in range(n_layers))
        self.norm = nn.LayerNorm(d_model) if norm_first else nn.Identity()
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, idx: Tensor) -> Tensor:
        T = idx.size(1)
        h = self.emb(idx) * math.sqrt(self.d_model) + self.pe[:T]  # (B, T, C), scaled as in the paper
        for b in self.blocks:
            h = b(h, is_causal=True)
        return self.head(self.norm(h))


def progression_batch(batch_size: int, length: int, vocab_size: int, generator: torch.Generator) -> Tensor:
    """Sequences ``x_t = (a + b t) mod V`` with random start ``a`` and step ``b ≠ 0``, ``(B, length)``.

    Predicting the next token needs the step, which only attention to the previous tokens reveals.
    """
    a = torch.randint(0, vocab_size, (batch_size, 1), generator=generator)
    b = torch.randint(1, vocab_size, (batch_size, 1), generator=generator)
    return (a + b * torch.arange(length)) % vocab_size


def train_toy_stack(*, norm_first: bool, warmup: int, lr: float = 5e-3, steps: int = 240, n_layers: int = 12,
                    d_model: int = 32, vocab_size: int = 16, block_size: int = 16, batch_size: int = 32,
                    seed: int = 0) -> list[float]:
    """Train a :class:`ToyStack` on :func:`progression_batch` with Adam and a linear warm-up.

    The optimiser is the paper's Adam (``betas=(0.9, 0.98), eps=1e-9``); the learning rate rises
    linearly from ``lr / warmup`` to ``lr`` over ``warmup`` steps (``warmup=0``: full ``lr`` at once)
    and then stays constant. Model initialisation and data use ``seed``.

    Returns:
        the training loss of every step.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    model = ToyStack(vocab_size, block_size, d_model=d_model, n_layers=n_layers, norm_first=norm_first)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
    losses = []
    for _ in range(steps):
        seq = progression_batch(batch_size, block_size + 1, vocab_size, gen)
        logits = model(seq[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), seq[:, 1:].flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def update_sensitivity(*, norm_first: bool, n_layers: int, lr: float = 1e-3, seed: int = 0, d_model: int = 32,
                       vocab_size: int = 16, block_size: int = 16, batch_size: int = 64) -> float:
    """How much one Adam step at initialisation changes the output: ``‖f(θ₁)(x) − f(θ₀)(x)‖ / ‖f(θ₀)(x)‖``.

    Adam's first step moves every weight by ``lr`` (against its gradient's sign) whatever the gradient's
    size, so this measures how strongly the architecture amplifies a fixed-size update (Liu et al. 2020).
    """
    torch.manual_seed(seed)
    model = ToyStack(vocab_size, block_size, d_model=d_model, n_layers=n_layers, norm_first=norm_first)
    seq = progression_batch(batch_size, block_size + 1, vocab_size, torch.Generator().manual_seed(seed + 1))
    x = seq[:, :-1]
    with torch.no_grad():
        before = model(x)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98), eps=1e-9)
    F.cross_entropy(model(x).flatten(0, 1), seq[:, 1:].flatten()).backward()
    opt.step()
    with torch.no_grad():
        after = model(x)
    return ((after - before).norm() / before.norm()).item()


def plot_loss_curves(curves: Mapping[str, Sequence[float]], *, ax=None, smooth: int = 10,
                     title: str | None = None, reference: float | None = None):
    """Training-loss curves (moving average over ``smooth`` steps), one per entry. Returns the figure.

    ``reference`` draws a dotted horizontal line (e.g. the loss of guessing uniformly, ``ln V``).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 3.4))
    styles = {0: dict(color="C3", ls="-"), 1: dict(color="C3", ls="--"), 2: dict(color="C0", ls="-"),
              3: dict(color="C0", ls="--")}
    for i, (name, vals) in enumerate(curves.items()):
        v = torch.tensor(vals, dtype=torch.float64)
        if smooth > 1 and len(v) >= smooth:
            v = v.unfold(0, smooth, 1).mean(-1)
        ax.plot(range(smooth - 1, smooth - 1 + len(v)), v.numpy(), lw=1.6, label=name, **styles.get(i, {}))
    if reference is not None:
        ax.axhline(reference, color="0.5", ls=":", lw=1)
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return ax.figure
