"""Carry out one request against a namespace of implementations (a notebook's, or the reference's).

The same code runs in-process for :class:`~tfmcourse.grading.impl.LocalImpl` and inside the sandbox
worker, so the reference and a submission are driven identically. A request is a plain dict (see
:mod:`tfmcourse.grading.impl` for the public API that builds them); the reply is
``{"ok": True, "value": ...}`` or ``{"ok": False, "error": {"kind", "type", "message", "where"}}`` with
``kind`` one of ``student`` (their code raised), ``missing`` (name not defined), ``interface`` (it exists
but does not fit, e.g. parameter names differ).
"""
from __future__ import annotations

import math
import traceback
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from . import fixtures
from .wire import Ref

__all__ = ["execute", "Problem"]


class Problem(Exception):
    """A ``missing`` or ``interface`` problem found while carrying out a request."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _where(exc: BaseException) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith("<cell")]
    if not frames:
        return ""
    f = frames[-1]
    return f"{f.filename.strip('<>')}, line {f.lineno}, in {f.name}"


def resolve(ns: Mapping[str, Any], name: str) -> Any:
    obj = ns.get(name)
    if obj is None:
        raise Problem("missing", f"{name} is not defined in the notebook (its tests score 0)")
    if getattr(obj, "__tfm_stub__", False):
        raise Problem("missing", f"{name} is the tfmcourse reference, which is disabled while its chapter is "
                                 f"graded: define {name} yourself in the notebook")
    if not callable(obj):
        raise Problem("missing", f"{name} is defined but is a {type(obj).__name__}, not a function or class")
    return obj


def _subst(obj: Any, objects: Mapping[str, Any]) -> Any:
    """Replace :class:`Ref` placeholders by the objects built for this request."""
    if isinstance(obj, Ref):
        if obj.key not in objects:
            raise Problem("interface", f"grader bug: unknown object {obj.key!r}")
        return objects[obj.key]
    if isinstance(obj, list):
        return [_subst(o, objects) for o in obj]
    if isinstance(obj, tuple):
        return tuple(_subst(o, objects) for o in obj)
    if isinstance(obj, dict):
        return {k: _subst(v, objects) for k, v in obj.items()}
    return obj


def _track(args: list, kwargs: dict) -> tuple[list, dict]:
    """Make floating-point tensor arguments leaves that require grad."""
    def leaf(a: Any) -> Any:
        return a.detach().clone().requires_grad_(True) if isinstance(a, Tensor) and a.is_floating_point() else a
    return [leaf(a) for a in args], {k: leaf(v) for k, v in kwargs.items()}


def _grad_of(a: Any) -> Tensor | None:
    return a.grad if isinstance(a, Tensor) and a.requires_grad else None


def _backward(out: Any, grad: Any, index: int | None) -> None:
    target = out
    if isinstance(out, (tuple, list)):
        target = out[index or 0]
    elif index not in (None, 0):
        raise Problem("interface", f"expected a tuple output to differentiate output {index}, got {type(out).__name__}")
    if not isinstance(target, Tensor):
        raise Problem("interface", f"expected a tensor output to differentiate, got {type(target).__name__}")
    if not target.requires_grad:
        raise Problem("interface", "the output does not depend differentiably on the inputs "
                                   "(was it detached, or computed under torch.no_grad()?)")
    target.backward(grad)


def _call(ns: Mapping[str, Any], req: dict) -> Any:
    fn = resolve(ns, req["name"])
    args, kwargs = list(req.get("args", ())), dict(req.get("kwargs", {}))
    grad = req.get("grad")
    if grad is not None:
        args, kwargs = _track(args, kwargs)
    torch.manual_seed(req.get("seed", 0))
    out = fn(*args, **kwargs)
    if grad is None:
        return out
    _backward(out, grad, req.get("grad_index"))
    return {"value": out, "grads": [_grad_of(a) for a in args], "kwgrads": {k: _grad_of(v) for k, v in kwargs.items()}}


def _build(ns: Mapping[str, Any], name: str, args: Any, kwargs: Any, objects: Mapping[str, Any]) -> Any:
    if name.startswith(fixtures.PREFIX):  # a grader-defined object (model, optimizer, ...), not the student's
        cls = fixtures.FIXTURES[name[len(fixtures.PREFIX):]]
    else:
        cls = resolve(ns, name)
    return cls(*_subst(list(args), objects), **_subst(dict(kwargs), objects))


def _load(module: nn.Module, name: str, state: dict) -> None:
    if not isinstance(module, nn.Module):
        raise Problem("interface", f"{name} must be a torch.nn.Module subclass, got {type(module).__name__}")
    own = module.state_dict()
    missing, unexpected = sorted(set(state) - set(own)), sorted(set(own) - set(state))
    if missing or unexpected:
        raise Problem("interface", f"{name}'s parameter names differ from the reference: missing {missing[:6]}, "
                                   f"unexpected {unexpected[:6]}; name sub-modules and parameters as in the "
                                   f"reference (e.g. qkv, proj, norm1, fc1) so its weights can be loaded")
    bad = [f"{k}: {tuple(own[k].shape)} (reference {tuple(v.shape)})" for k, v in state.items()
           if tuple(own[k].shape) != tuple(v.shape)]
    if bad:
        raise Problem("interface", f"{name}'s parameter shapes differ from the reference: {'; '.join(bad[:4])}")
    module.load_state_dict(state, strict=True)


def _prepare(module: Any, name: str, state: dict | None, dtype: torch.dtype | None) -> None:
    """Convert to ``dtype`` (default: the one floating dtype of ``state``), then load ``state``."""
    if dtype is None and state:
        kinds = {t.dtype for t in state.values() if isinstance(t, Tensor) and t.is_floating_point()}
        dtype = kinds.pop() if len(kinds) == 1 else None
    if isinstance(module, nn.Module) and dtype is not None:
        module.to(dtype)  # before loading, so float64 weights keep their precision
    if state is not None:
        _load(module, name, state)


def _objects(ns: Mapping[str, Any], req: dict) -> dict[str, Any]:
    """The request's extra objects (``objects={"key": obj_spec(...)}``), built in order."""
    objects: dict[str, Any] = {}
    for key, spec in (req.get("objects") or {}).items():
        objects[key] = _build(ns, spec["name"], spec.get("args", ()), spec.get("kwargs", {}), objects)
    return objects


def _module(ns: Mapping[str, Any], req: dict) -> dict:
    torch.manual_seed(req.get("seed", 0))
    objects = _objects(ns, req)
    name = req["name"]
    main = objects["main"] = _build(ns, name, req.get("init_args", ()), req.get("init_kwargs", {}), objects)
    _prepare(main, name, req.get("state_dict"), req.get("dtype"))
    if isinstance(main, nn.Module):
        main.train(bool(req.get("train", False)))
    grad, grad_call = req.get("backward"), req.get("grad_call", -1)
    calls = req.get("calls") or [{"method": "forward"}]
    grad_call = grad_call % len(calls)
    outputs, in_grads, kw_grads = [], [], {}
    for i, call in enumerate(calls):
        if "get" in call:  # an object itself (e.g. what a function built as ``main`` returned)
            outputs.append(objects[call["get"]])
            continue
        if "function" in call:  # a function of the implementation, called with the built objects
            fn, target = resolve(ns, call["function"]), None
        else:
            target = objects[call.get("target", "main")]
        if "attr" in call:
            outputs.append(getattr(target, call["attr"]))
            continue
        args, kwargs = _subst(list(call.get("args", ())), objects), _subst(dict(call.get("kwargs", {})), objects)
        if grad is not None and i == grad_call:
            args, kwargs = _track(args, kwargs)
        if target is not None:
            method = call.get("method", "forward")
            fn = target if method in ("forward", "__call__") and isinstance(target, nn.Module) else getattr(target, method)
        out = fn(*args, **kwargs)
        outputs.append(out)
        if grad is not None and i == grad_call:
            _backward(out, grad, req.get("grad_index"))
            in_grads = [_grad_of(a) for a in args]
            kw_grads = {k: _grad_of(v) for k, v in kwargs.items()}
    result: dict[str, Any] = {"outputs": outputs, "input_grads": in_grads, "kwarg_grads": kw_grads}
    if isinstance(main, nn.Module):
        if grad is not None:
            result["param_grads"] = {n: p.grad for n, p in main.named_parameters()}
        if req.get("return_state"):
            result["state_dict"] = dict(main.state_dict())
    return result


def _params(ns: Mapping[str, Any], req: dict) -> dict:
    torch.manual_seed(req.get("seed", 0))
    module = _build(ns, req["name"], req.get("init_args", ()), req.get("init_kwargs", {}), {})
    if not isinstance(module, nn.Module):
        raise Problem("interface", f"{req['name']} must be a torch.nn.Module subclass, got {type(module).__name__}")
    return {"params": {n: tuple(p.shape) for n, p in module.named_parameters()},
            "state_dict": {n: tuple(t.shape) for n, t in module.state_dict().items()},
            "requires_grad": {n: bool(p.requires_grad) for n, p in module.named_parameters()}}


def _train(ns: Mapping[str, Any], req: dict) -> dict:
    """Train ``name`` on ``inputs -> targets`` with AdamW (student ``param_groups``/``warmup_cosine_lr``
    if asked); return the final state dict, the losses and the learning rates used.

    ``per_step``: ``inputs``/``targets`` hold one batch per step along their first axis (step ``i`` trains
    on ``inputs[i] -> targets[i]``); otherwise every step sees the same batch. ``objects`` are built first,
    as for ``run_module`` (e.g. a config passed as ``Ref("cfg")``)."""
    torch.manual_seed(req.get("seed", 0))
    model = _build(ns, req["name"], req.get("init_args", ()), req.get("init_kwargs", {}), _objects(ns, req))
    _prepare(model, req["name"], req.get("state_dict"), None)
    model.train(bool(req.get("train_mode", False)))
    wd, lr = float(req.get("weight_decay", 0.0)), float(req.get("lr", 1e-3))
    groups = resolve(ns, "param_groups")(model, wd) if req.get("use_param_groups") else model.parameters()
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=wd)
    schedule = req.get("schedule")
    sched_fn = resolve(ns, "warmup_cosine_lr") if schedule else None
    inputs, targets = req["inputs"], req["targets"]
    inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    losses, lrs = [], []
    per_step = bool(req.get("per_step"))
    for step in range(int(req.get("steps", 10))):
        step_lr = float(sched_fn(step, **schedule)) if sched_fn else lr
        for g in opt.param_groups:
            g["lr"] = step_lr
        x, y = ([a[step] for a in inputs], targets[step]) if per_step else (inputs, targets)
        out = model(*x)
        out = out[0] if isinstance(out, (tuple, list)) else out
        if req.get("loss", "mse") == "cross_entropy":
            loss = nn.functional.cross_entropy(out.reshape(-1, out.size(-1)), y.reshape(-1), ignore_index=-100)
        else:
            loss = nn.functional.mse_loss(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if req.get("clip"):
            nn.utils.clip_grad_norm_(model.parameters(), float(req["clip"]))
        opt.step()
        losses.append(float(loss.detach()) if math.isfinite(float(loss.detach())) else float("nan"))
        lrs.append(step_lr)
    return {"state_dict": dict(model.state_dict()), "losses": losses, "lrs": lrs}


def _names(ns: Mapping[str, Any], req: dict) -> dict:
    out = {}
    for name in req["names"]:
        obj = ns.get(name)
        out[name] = ("missing" if obj is None else "stub" if getattr(obj, "__tfm_stub__", False)
                     else "class" if isinstance(obj, type) else "function" if callable(obj) else "other")
    return out


_OPS = {"call": _call, "module": _module, "params": _params, "train": _train, "names": _names}


def execute(ns: Mapping[str, Any], req: dict) -> dict:
    """Carry out ``req`` against ``ns``; never raises for a problem in the implementation."""
    op = _OPS.get(req.get("op"))
    if op is None:
        return {"ok": False, "error": {"kind": "interface", "type": "GraderError", "message": f"unknown op {req.get('op')!r}", "where": ""}}
    try:
        with torch.enable_grad():
            return {"ok": True, "value": op(ns, req)}
    except Problem as p:
        return {"ok": False, "error": {"kind": p.kind, "type": type(p).__name__, "message": str(p), "where": ""}}
    except BaseException as e:  # noqa: BLE001 - SystemExit from student code is an error like any other
        if isinstance(e, KeyboardInterrupt):
            raise
        msg = str(e).strip().splitlines()[0][:500] if str(e).strip() else ""
        return {"ok": False, "error": {"kind": "student", "type": type(e).__name__, "message": msg, "where": _where(e)}}
