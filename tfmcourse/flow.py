"""Follow a tensor through a model: name, type, output shape and dtype at every module boundary.

    >>> trace = trace_flow(model, idx)      # any nn.Module and its forward arguments
    >>> print(trace)                        # a text table; in Jupyter it renders as HTML
"""
from __future__ import annotations

import html
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["FlowRecord", "FlowTrace", "trace_flow"]


@dataclass(frozen=True)
class FlowRecord:
    """One module call: where it sits, what it is and what came out."""

    name: str
    kind: str
    depth: int
    in_shape: tuple[int, ...] | None
    out_shape: tuple[int, ...] | None
    dtype: str


class FlowTrace(list):
    """The records of one forward pass, in call order; prints as a table."""

    def table(self) -> str:
        rows = [("module", "type", "input", "output", "dtype")]
        rows += [("  " * r.depth + _label(r.name), r.kind, _fmt(r.in_shape),
                  _fmt(r.out_shape), r.dtype) for r in self]
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in ("module", "type", "input", "output", "dtype"))
        body = "".join(
            "<tr>" + "".join(f"<td style='text-align:left'>{html.escape(c)}</td>" for c in (
                "\u2003" * r.depth + _label(r.name), r.kind,
                _fmt(r.in_shape), _fmt(r.out_shape), r.dtype)) + "</tr>"
            for r in self)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _label(name: str) -> str:
    """Last part of a module's dotted name; list items keep their list's name (``blocks.0``)."""
    if not name:
        return "(model)"
    parts = name.split(".")
    return ".".join(parts[-2:]) if parts[-1].isdigit() and len(parts) > 1 else parts[-1]


def _fmt(shape: tuple[int, ...] | None) -> str:
    return "-" if shape is None else "(" + ", ".join(map(str, shape)) + ")"


def _first_tensor(obj) -> Tensor | None:
    if isinstance(obj, Tensor):
        return obj
    if isinstance(obj, (tuple, list)):
        for o in obj:
            t = _first_tensor(o)
            if t is not None:
                return t
    if isinstance(obj, dict):
        return _first_tensor(list(obj.values()))
    return None


def trace_flow(model: nn.Module, *args, max_depth: int | None = None, **kwargs) -> FlowTrace:
    """Run ``model(*args, **kwargs)`` without gradients and record every submodule call.

    Args:
        model: any module (a tfmcourse model, a block, a PyTorch layer).
        max_depth: record modules at most this deep (0 = only the model itself); ``None`` = all.

    Returns:
        A :class:`FlowTrace` in call order (a parent comes before its children).
    """
    records: list[tuple[int, FlowRecord]] = []
    handles, counter = [], [0]

    containers = {n for n, m in model.named_modules() if isinstance(m, (nn.ModuleList, nn.ModuleDict))}
    for name, mod in model.named_modules():
        if name in containers:
            continue  # a ModuleList is never called itself: its items sit at its own depth
        parts = name.split(".") if name else []
        depth = sum(1 for i in range(1, len(parts) + 1) if ".".join(parts[:i]) not in containers)
        if max_depth is not None and depth > max_depth:
            continue

        def pre(m, a, kw, name=name, depth=depth):
            counter[0] += 1
            m._flow_order = counter[0]
            m._flow_in = _first_tensor((a, kw))

        def post(m, a, kw, out, name=name, depth=depth):
            t_in, t_out = m._flow_in, _first_tensor(out)
            records.append((m._flow_order, FlowRecord(
                name, type(m).__name__, depth,
                tuple(t_in.shape) if t_in is not None else None,
                tuple(t_out.shape) if t_out is not None else None,
                str(t_out.dtype).replace("torch.", "") if t_out is not None else "-")))

        handles.append(mod.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(mod.register_forward_hook(post, with_kwargs=True))
    try:
        with torch.no_grad():
            model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
        for mod in model.modules():
            for attr in ("_flow_order", "_flow_in"):
                if hasattr(mod, attr):
                    delattr(mod, attr)
    return FlowTrace(r for _, r in sorted(records, key=lambda t: t[0]))
