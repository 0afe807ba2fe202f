"""Blocks and whole models, read from their code: ``torch.fx`` traces a block's forward into its
sub-layer calls and residual additions, and the model outlines come from the modules' children."""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch.fx as fx
from matplotlib.patches import FancyBboxPatch
from torch import nn

from ...ffn import FeedForward, SwiGLU
from ...multihead import MultiHeadAttention
from ...norm import LayerNorm, RMSNorm
from .draw import COLOURS, FONT, INK, MIN_FONT, _arrow, _box, _canvas, _fit_height, _line, _names, _plus

__all__ = ["Step", "block_steps", "plot_block", "plot_blocks", "plot_transformer_overview"]


@dataclass(frozen=True)
class Step:
    """One node of a block's data flow: a sub-layer call or a residual addition.

    ``kind`` is ``"norm"``, ``"attention"``, ``"cross"``, ``"ffn"`` or ``"add"``; ``name`` is the attribute
    name in the block (``norm1``, ``attn``, ``ffn``…); ``skip`` is, for an addition, the name of the step
    whose output the residual branch carries (``"x"`` for the block input); ``causal`` marks attention
    called with ``is_causal=True``; ``context`` names the extra input of cross-attention (``"memory"``).
    """

    kind: str
    name: str
    label: str = ""
    skip: str | None = None
    causal: bool = False
    context: str | None = None

    @property
    def short(self) -> str:
        """A label short enough for a box: ``masked self-attn``, ``cross-attention``, ``FFN``."""
        return {"attention": "masked self-attn" if self.causal else "self-attention", "cross": "cross-attn",
                "ffn": "FFN", "norm": self.label, "add": "+"}[self.kind]


class _ChildrenAreLeaves(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return "." not in qualname  # trace the block itself, not inside its sub-layers


def _kind(m: nn.Module) -> str | None:
    if isinstance(m, (LayerNorm, RMSNorm, nn.LayerNorm, nn.RMSNorm)):
        return "norm"
    if isinstance(m, MultiHeadAttention):
        return "attention"
    if isinstance(m, (FeedForward, SwiGLU)):
        return "ffn"
    if isinstance(m, (nn.Dropout, nn.Identity)):
        return None  # identity at evaluation: left out of the picture
    raise NotImplementedError(f"no diagram kind for {type(m).__name__}")


def block_steps(block: nn.Module, **concrete) -> list[Step]:
    """Trace ``block.forward`` and return its sub-layer calls and residual additions in order.

    Keyword arguments fix ``forward``'s optional arguments (e.g. ``is_causal=True``); the others keep
    their defaults. Works for blocks whose forward is a chain of sub-layers with residual additions
    (:class:`~tfmcourse.blocks.EncoderBlock`, :class:`~tfmcourse.blocks.DecoderBlock`).
    """
    params = list(inspect.signature(block.forward).parameters.values())[1:]
    fixed = {p.name: concrete.get(p.name, p.default) for p in params if p.default is not inspect.Parameter.empty}
    graph = _ChildrenAreLeaves().trace(block, concrete_args=fixed)
    modules = dict(block.named_children())
    alias: dict[str, str] = {}  # node -> the step whose value it carries (dropout is the identity here)
    steps: list[Step] = []
    for node in graph.nodes:
        if node.op == "placeholder":
            alias[node.name] = node.name
        elif node.op == "call_module":
            src = alias[node.args[0].name]
            kind = _kind(modules[node.target])
            if kind is None:
                alias[node.name] = src
                continue
            context = node.args[1].name if len(node.args) > 1 and isinstance(node.args[1], fx.Node) else None
            causal = node.kwargs.get("is_causal") is True
            if kind == "attention":
                kind = "cross" if context else "attention"
            label = {"norm": type(modules[node.target]).__name__, "ffn": "FFN",
                     "attention": "masked self-attention" if causal else "self-attention",
                     "cross": "cross-attention"}[kind]
            steps.append(Step(kind, node.target, label, causal=causal, context=context))
            alias[node.name] = node.target
        elif node.op == "call_function" and getattr(node.target, "__name__", "") == "add":
            a, b = (alias[arg.name] for arg in node.args)
            prev = steps[-1].name if steps else None
            main, skip = (a, b) if a == prev else (b, a)
            steps.append(Step("add", node.name, skip=skip))
            alias[node.name] = node.name
        elif node.op == "output":
            if alias[node.args[0].name] != (steps[-1].name if steps else None):
                raise NotImplementedError("the block's output is not its last step")
    return steps


def plot_block(ax, steps: Sequence[Step], cx: float, y0: float, *, title: str = "", dy: float = 0.5,
               box_w: float = 2.0, input_name: str = "x") -> float:
    """Draw ``steps`` as a bottom-to-top data flow centred at ``cx``; return the top y."""
    lanes = (cx - box_w / 2 - 0.3, cx - box_w / 2 - 0.16)  # alternate, so consecutive residuals stay apart
    n_add = 0
    ax.text(cx, y0, input_name, ha="center", va="center", fontsize=FONT, color=INK)
    tops = {input_name: y0 + 0.16}  # where each step's output leaves the main line
    y = y0 + 0.16
    for s in steps:
        y_c = y + dy
        if s.kind == "add":
            _arrow(ax, (cx, y), (cx, y_c - 0.13))
            y_src = tops["x" if s.skip == input_name else s.skip] + 0.1
            lane = lanes[n_add % 2]
            n_add += 1
            _line(ax, [cx, lane, lane], [y_src, y_src, y_c])
            _arrow(ax, (lane, y_c), (cx - 0.13, y_c))
            _plus(ax, cx, y_c)
            y = y_c + 0.13
        else:
            h = 0.34
            _arrow(ax, (cx, y), (cx, y_c - h / 2))
            _box(ax, cx, y_c, box_w, h, f"{s.name}: {s.short}" if s.kind != "norm" else s.name, s.kind,
                 fontsize=MIN_FONT)
            if s.context:
                xr = cx + box_w / 2
                _arrow(ax, (xr + 0.6, y_c), (xr, y_c))
                ax.text(xr + 0.62, y_c + 0.2, s.context, ha="right", va="bottom", fontsize=MIN_FONT, color=INK)
            y = y_c + h / 2
        tops[s.name] = y
    _arrow(ax, (cx, y), (cx, y + 0.3))
    if title:
        ax.text(cx, y + 0.45, title, ha="center", va="bottom", fontsize=FONT + 1, color=INK, weight="bold")
    return y + 0.3


def plot_blocks(blocks: dict[str, nn.Module], **concrete):
    """Side-by-side data-flow diagrams of blocks (e.g. pre-LN and post-LN), traced from their code.

    Keyword arguments go to :func:`block_steps` (e.g. ``is_causal=True`` for a GPT block).
    """
    traced = {title: block_steps(b, **concrete) for title, b in blocks.items()}
    has_context = any(st.context for s in traced.values() for st in s)
    box_w = 2.1
    col = 0.4 + box_w + (0.7 if has_context else 0.15)  # residual lane, box, memory arrow
    fig, ax = _canvas(col * len(traced) + 0.1, 12.0)
    top = 0.0
    for i, (title, steps) in enumerate(traced.items()):
        cx = 0.1 + i * col + 0.4 + box_w / 2
        top = max(top, plot_block(ax, steps, cx=cx, y0=0.2, title=title, box_w=box_w))
    _fit_height(fig, ax, top + 0.75)
    return fig


# --------------------------------------------------------------------------------------------------
# Whole models


def _sublayers(block: nn.Module, **concrete) -> list[Step]:
    return [s for s in block_steps(block, **concrete) if s.kind in ("attention", "cross", "ffn")]


def _tower(ax, cx: float, y: float, w: float, parts: list[tuple[str, str]], stack: tuple[str, list[Step]] | None,
           after: list[tuple[str, str]], bottom: str, top: str | None) -> dict[str, float]:
    """Inputs at the bottom, boxes ``parts``, an N x stack of sub-layers, boxes ``after``; return anchors."""
    anchors = {}
    ax.text(cx, y, bottom, ha="center", va="center", fontsize=MIN_FONT, color=INK)
    y += 0.15
    for text, kind in parts:
        h = 0.2 + 0.2 * (text.count("\n") + 1)
        _arrow(ax, (cx, y), (cx, y + 0.2))
        _box(ax, cx, y + 0.2 + h / 2, w, h, text, kind, fontsize=MIN_FONT)
        y += 0.2 + h
    if stack:
        label, subs = stack
        h = 0.2 + 0.46 * len(subs) + 0.3
        _arrow(ax, (cx, y), (cx, y + 0.2))
        y += 0.2
        ax.add_patch(FancyBboxPatch((cx - w / 2 - 0.08, y), w + 0.16, h, boxstyle="round,pad=0,rounding_size=0.1",
                                    facecolor=COLOURS["stack"], edgecolor=INK, lw=1.2))
        ax.text(cx, y + h - 0.16, label, ha="center", va="center", fontsize=MIN_FONT, color=INK, weight="bold")
        for j, s in enumerate(subs):
            yc = y + 0.32 + 0.46 * j
            _box(ax, cx, yc, w - 0.2, 0.36, s.short, s.kind, fontsize=MIN_FONT)
            anchors[s.kind] = yc
        y += h
    for text, kind in after:
        _arrow(ax, (cx, y), (cx, y + 0.2))
        _box(ax, cx, y + 0.2 + 0.19, w, 0.38, text, kind, fontsize=MIN_FONT)
        y += 0.2 + 0.38
    if top:
        _arrow(ax, (cx, y), (cx, y + 0.2))
        ax.text(cx, y + 0.34, top, ha="center", va="center", fontsize=MIN_FONT, color=INK)
    anchors["top"] = y
    return anchors


def plot_transformer_overview(seq2seq: nn.Module, gpt: nn.Module):
    """The encoder–decoder :class:`~tfmcourse.models.Transformer` beside the decoder-only :class:`~tfmcourse.GPT`.

    Module names, layer counts and each block's sub-layers (traced) are read from the two models.
    """
    src, tgt, pos, head = _names(seq2seq, "src_embed", "tgt_embed", "pos", "head")
    tok, final, lm_head = _names(gpt, "tok_emb", "norm", "lm_head")
    enc_layers, dec_layers, blocks = seq2seq.encoder.layers, seq2seq.decoder.layers, gpt.blocks
    fig, ax = _canvas(6.6, 6.0)
    w, xe, xd, xg = 1.6, 0.9, 3.1, 5.6

    def final_norm(stack: nn.Module, name: str) -> list[tuple[str, str]]:
        return [] if isinstance(stack.norm, nn.Identity) else [(f"{name}.norm", "norm")]

    enc = _tower(ax, xe, 0.2, w, [(f"{src} + {pos}", "embed")],
                 (f"encoder: {len(enc_layers)} ×", _sublayers(enc_layers[0])), final_norm(seq2seq.encoder, "encoder"),
                 "source ids (B, S)", None)
    dec = _tower(ax, xd, 0.2, w, [(f"{tgt} + {pos}", "embed")],
                 (f"decoder: {len(dec_layers)} ×", _sublayers(dec_layers[0])),
                 final_norm(seq2seq.decoder, "decoder") + [(head, "head")], "target ids, shifted", "logits (B, T, V)")
    emb = f"{tok}\n+ pos_emb" if getattr(gpt, "pos_emb", None) is not None else tok
    gpt_top = _tower(ax, xg, 0.2, w, [(emb, "embed")],
                     (f"blocks: {len(blocks)} ×", _sublayers(blocks[0], is_causal=True)),
                     [(final, "norm"), (lm_head, "head")], "token ids (B, T)", "logits (B, T, V)")["top"]
    # the encoder's output ("memory") feeds the cross-attention of every decoder block
    mid, y_mem = (xe + xd) / 2, enc["top"] + 0.25
    _line(ax, [xe, xe, mid, mid], [enc["top"], y_mem, y_mem, dec["cross"]])
    _arrow(ax, (mid, dec["cross"]), (xd - w / 2 + 0.1, dec["cross"]))
    ax.text(xe, y_mem + 0.08, "memory", ha="center", va="bottom", fontsize=MIN_FONT, color=INK)
    top = max(dec["top"], gpt_top) + 0.55
    sep = (xd + w / 2 + xg - w / 2) / 2
    _line(ax, [sep, sep], [0.1, top + 0.4], lw=1.0, color="#999999", ls="--")
    for x, title in (((xe + xd) / 2, "encoder–decoder"), (xg, "decoder-only (GPT)")):
        ax.text(x, top + 0.2, title, ha="center", va="center", fontsize=FONT + 1, weight="bold", color=INK)
    _fit_height(fig, ax, top + 0.45)
    return fig
