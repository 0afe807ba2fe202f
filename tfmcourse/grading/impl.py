"""The ``impl`` API that hidden suites use to drive an implementation under test.

Every check is one request; the implementation (reference in-process, or a notebook in the sandbox)
answers with plain data (tensors, numbers, strings, lists, dicts). Expected values are never asked of
the implementation: the suite computes them itself with the reference ``tfmcourse`` or PyTorch.

========================================================  =============================================
``impl.call(name, *args, **kwargs)``                      call a function (or class) -> its return value
``impl.outcome(name, *args, **kwargs)``                   same, but an exception comes back as data:
                                                          ``Outcome(ok, value, error_type, message)``
``impl.grad(name, args, kwargs, grad_out, index=None)``   call + backward(grad_out) -> ``GradResult``
                                                          (``value``, ``grads`` per positional arg,
                                                          ``kwgrads``)
``impl.run_module(name, init_args, init_kwargs,           build ``name(*init_args, **init_kwargs)``, load
   state_dict=None, calls=None, backward=None, ...)``     the reference's ``state_dict`` (names must match),
                                                          run ``calls`` -> ``ModuleResult`` (``outputs``,
                                                          ``input_grads``, ``param_grads``, ``state_dict``)
``impl.run_module(FN, (Ref("model"), ...),                call the function FN with objects built in the
   objects={...}, calls=[fcall(FN, ...), get(), ...])``   implementation (fixtures such as a model and its
                                                          optimizer), again with ``fcall``; ``get()`` gives
                                                          the first call's value (e.g. a training step)
``impl.forward(name, init_kwargs, state_dict, *args)``    shorthand: one forward call -> its output
``impl.param_shapes(name, init_args, init_kwargs)``       ``{param name: shape}``
``impl.state_dict_keys(name, init_args, init_kwargs)``    sorted state-dict keys
``impl.train(name, init_kwargs, inputs, targets, ...)``   train with AdamW in the implementation; returns
                                                          ``{"state_dict", "losses", "lrs"}``
``impl.kinds(names)``                                     ``{name: "function"|"class"|"missing"|...}``
========================================================  =============================================

``calls`` is a list of ``call(method="forward", *args, **kwargs)`` / ``attr("name")`` entries run in
order on the same object (stateful scenarios such as a KV cache); ``objects={"cache": obj_spec("KVCache")}``
builds further objects first and ``Ref("cache")`` passes them as arguments. ``fcall(name, *args, **kwargs)``
entries call a *function* of the implementation with such objects (e.g. a training step given a fixture
model, optimizer and scaler, called several times, then ``call("state_dict", target="model")``), and
``get("key")`` returns an object itself (``get()``: ``main``, e.g. what the function named by ``name``
returned when it was "built"). A failing implementation raises
:class:`StudentError` (their exception), :class:`MissingName`, :class:`InterfaceError` or
:class:`SandboxError`; each message is written for the student's feedback.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch

from . import interfaces
from .executor import execute
from .wire import InterfaceError, MissingName, Ref, StudentError, dumps, loads

__all__ = ["Impl", "LocalImpl", "Outcome", "GradResult", "ModuleResult", "call", "fcall", "attr", "get", "obj_spec",
           "Ref"]


def call(method: str = "forward", *args: Any, target: str = "main", **kwargs: Any) -> dict:
    """One step of a ``run_module`` scenario: ``target.method(*args, **kwargs)``."""
    return {"method": method, "args": list(args), "kwargs": kwargs, "target": target}


def fcall(function: str, *args: Any, **kwargs: Any) -> dict:
    """One step of a ``run_module`` scenario: the implementation's ``function(*args, **kwargs)``, where
    ``Ref("key")`` arguments stand for the scenario's objects."""
    return {"function": function, "args": list(args), "kwargs": kwargs}


def attr(name: str, target: str = "main") -> dict:
    """One step of a ``run_module`` scenario that reads an attribute (e.g. a cache's ``k``)."""
    return {"attr": name, "target": target}


def get(target: str = "main") -> dict:
    """One step of a ``run_module`` scenario that returns an object itself (e.g. ``main`` when ``name`` is a
    function: its return value)."""
    return {"get": target}


def obj_spec(name: str, *args: Any, **kwargs: Any) -> dict:
    """An extra object to build before a scenario (``objects={"cache": obj_spec("KVCache")}``).

    ``name`` is a name of the implementation's namespace, or ``"fixture:NAME"`` for a grader-defined
    object from :mod:`tfmcourse.grading.fixtures` (e.g. ``obj_spec("fixture:tied_lm", vocab, d_model)``,
    ``obj_spec("fixture:sgd", Ref("model"), lr=0.0)``).
    """
    return {"name": name, "args": list(args), "kwargs": kwargs}


@dataclass
class Outcome:
    ok: bool
    value: Any = None
    error_type: str = ""
    message: str = ""
    kind: str = ""


@dataclass
class GradResult:
    value: Any
    grads: list
    kwgrads: dict


@dataclass
class ModuleResult:
    outputs: list
    input_grads: list = field(default_factory=list)
    kwarg_grads: dict = field(default_factory=dict)
    param_grads: dict = field(default_factory=dict)
    state_dict: dict | None = None

    @property
    def output(self) -> Any:
        """The output of the last call."""
        return self.outputs[-1]


class Impl:
    """Common API; subclasses implement :meth:`request` (one round trip of a request dict)."""

    chapter: str

    def request(self, req: dict) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (a sandbox worker); the default has none."""

    def report(self) -> dict:
        """What loading the implementation produced: ``{"problems": [...], "sandbox": ..., ...}``."""
        return {"problems": []}

    def _value(self, req: dict) -> Any:
        reply = self.request(req)
        if reply.get("ok"):
            return reply.get("value")
        err = reply.get("error") or {}
        kind, message = err.get("kind", "student"), str(err.get("message", ""))
        if kind == "missing":
            raise MissingName(message)
        if kind == "interface":
            raise InterfaceError(message)
        raise StudentError(req.get("name", "?"), str(err.get("type", "Exception")), message, str(err.get("where", "")))

    # -- functions ------------------------------------------------------------------------------
    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._value({"op": "call", "name": name, "args": list(args), "kwargs": kwargs})

    def outcome(self, name: str, *args: Any, **kwargs: Any) -> Outcome:
        """Like :meth:`call`, but the student's exception is returned, not raised (for expected errors)."""
        try:
            return Outcome(True, self.call(name, *args, **kwargs))
        except StudentError as e:
            return Outcome(False, None, e.type_name, e.message, "student")

    def grad(self, name: str, args: list | tuple, kwargs: dict | None = None, grad_out: Any = None,
             index: int | None = None, seed: int = 0) -> GradResult:
        """Call ``name`` with floating tensor arguments tracked, backpropagate ``grad_out`` from the output
        (``output[index]`` for tuple outputs); ``grad_out=None`` means a scalar output."""
        v = self._value({"op": "call", "name": name, "args": list(args), "kwargs": kwargs or {}, "seed": seed,
                         "grad": grad_out if grad_out is not None else torch.tensor(1.0), "grad_index": index})
        return GradResult(v["value"], list(v["grads"]), dict(v["kwgrads"]))

    # -- modules --------------------------------------------------------------------------------
    def run_module(self, name: str, init_args: tuple | list = (), init_kwargs: Mapping | None = None,
                   state_dict: Mapping | None = None, calls: list[dict] | None = None, *, backward: Any = None,
                   grad_call: int = -1, grad_index: int | None = None, dtype: torch.dtype | None = None,
                   train: bool = False, seed: int = 0, objects: Mapping[str, dict] | None = None,
                   return_state: bool = False, timeout_s: float | None = None) -> ModuleResult:
        """Build ``name``, convert it to ``dtype`` (default: the floating dtype of ``state_dict``, if it has
        one), load ``state_dict`` (keys and shapes must equal it), set eval mode (``train=False``), run
        ``calls`` (default one ``forward()``); ``backward`` backpropagates from the output of call
        ``grad_call`` and returns input and parameter grads. ``timeout_s`` allows this request more time than
        the grader's per-request limit (the submission's whole budget still applies)."""
        v = self._value({"op": "module", "name": name, "init_args": list(init_args), "init_kwargs": dict(init_kwargs or {}),
                         "state_dict": dict(state_dict) if state_dict is not None else None, "calls": calls,
                         "backward": backward, "grad_call": grad_call, "grad_index": grad_index, "dtype": dtype,
                         "train": train, "seed": seed, "objects": dict(objects or {}), "return_state": return_state,
                         **({"timeout_s": float(timeout_s)} if timeout_s else {})})
        return ModuleResult(list(v["outputs"]), list(v.get("input_grads") or []), dict(v.get("kwarg_grads") or {}),
                            dict(v.get("param_grads") or {}), v.get("state_dict"))

    def forward(self, name: str, init_kwargs: Mapping, state_dict: Mapping | None, *args: Any, **kwargs: Any) -> Any:
        """Shorthand: build, load weights, one forward call in eval mode; returns its output."""
        return self.run_module(name, (), init_kwargs, state_dict, [call("forward", *args, **kwargs)]).output

    def param_shapes(self, name: str, init_args: tuple | list = (), init_kwargs: Mapping | None = None) -> dict:
        v = self._value({"op": "params", "name": name, "init_args": list(init_args), "init_kwargs": dict(init_kwargs or {})})
        return {k: tuple(s) for k, s in v["params"].items()}

    def state_dict_keys(self, name: str, init_args: tuple | list = (), init_kwargs: Mapping | None = None) -> list[str]:
        v = self._value({"op": "params", "name": name, "init_args": list(init_args), "init_kwargs": dict(init_kwargs or {})})
        return sorted(v["state_dict"])

    def train(self, name: str, init_kwargs: Mapping, inputs: Any, targets: Any, *, init_args: tuple | list = (),
              state_dict: Mapping | None = None, steps: int = 10, lr: float = 1e-3, weight_decay: float = 0.0,
              loss: str = "mse", use_param_groups: bool = False, schedule: Mapping | None = None,
              clip: float | None = None, seed: int = 0, objects: Mapping[str, dict] | None = None,
              per_step: bool = False, timeout_s: float | None = None) -> dict:
        """Train in the implementation (its own modules, ``param_groups`` and ``warmup_cosine_lr`` when asked);
        evaluate the returned ``state_dict`` with the reference in the suite.

        ``per_step``: ``inputs``/``targets`` stack one batch per step along their first axis. ``objects`` are
        built first (``init_args=(Ref("cfg"),)``), as for :meth:`run_module`; ``timeout_s`` as there."""
        return self._value({"op": "train", "name": name, "init_args": list(init_args), "init_kwargs": dict(init_kwargs),
                            "state_dict": dict(state_dict) if state_dict is not None else None, "inputs": inputs,
                            "targets": targets, "steps": steps, "lr": lr, "weight_decay": weight_decay, "loss": loss,
                            "use_param_groups": use_param_groups, "schedule": dict(schedule) if schedule else None,
                            "clip": clip, "seed": seed, "objects": dict(objects or {}), "per_step": per_step,
                            **({"timeout_s": float(timeout_s)} if timeout_s else {})})

    def kinds(self, names: list[str]) -> dict[str, str]:
        return self._value({"op": "names", "names": list(names)})


class LocalImpl(Impl):
    """Runs requests in this process against ``source``: a mapping (e.g. a notebook's ``globals()``) or a
    list of modules. Requests and replies still go through the wire format, so the reference is driven
    exactly like a sandboxed submission."""

    def __init__(self, source: Mapping[str, Any] | list, chapter: str = "") -> None:
        if isinstance(source, Mapping):
            self.ns: Mapping[str, Any] = source
        else:
            self.ns = {k: v for mod in source for k, v in vars(mod).items() if not k.startswith("_")}
        self.chapter = chapter

    @classmethod
    def reference(cls, chapter: str = "") -> "LocalImpl":
        """The reference package: every graded chapter's interface names (those that exist), the capstone's too."""
        pairs = [(n, m) for c in interfaces.GRADED.values() for n, m in c.names.items()]
        ns, _ = interfaces.reference_namespace(pairs)
        return cls(ns, chapter)

    def request(self, req: dict) -> dict:
        return loads(dumps(execute(self.ns, loads(dumps(req)))))
