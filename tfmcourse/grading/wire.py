"""What crosses between the trusted grader and an implementation under test, and the errors it raises.

Messages are plain data: ``dict``/``list``/``tuple``/``str``/numbers/``None``/``torch.dtype`` and tensors,
serialised with ``torch.save`` and read back with ``torch.load(weights_only=True)``, which refuses
anything else (no pickled classes, no code). A frame on the pipe is an 8-byte big-endian length
followed by that many bytes.
"""
from __future__ import annotations

import io
import os
import select
import struct
import time
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["GradingError", "StudentError", "MissingName", "InterfaceError", "SandboxError", "Ref", "to_wire", "from_wire",
           "dumps", "loads", "write_frame", "read_frame", "MAX_FRAME"]

MAX_FRAME = 256 * 2**20  # bytes; a larger frame is treated as garbage
_HEADER = struct.Struct(">Q")


class GradingError(Exception):
    """Base of every error the grader turns into a one-line reason in the student's feedback."""


class StudentError(GradingError):
    """The student's code raised: ``type_name`` and ``message`` of their exception, ``where`` it came from."""

    def __init__(self, name: str, type_name: str, message: str, where: str = "") -> None:
        self.name, self.type_name, self.message, self.where = name, type_name, message, where
        loc = f" ({where})" if where else ""
        super().__init__(f"{name} raised {type_name}: {message}{loc}")


class MissingName(GradingError):
    """The notebook does not define an interface name (or defines it as something unusable)."""


class InterfaceError(GradingError):
    """The implementation exists but does not match the interface (e.g. parameter names differ)."""


class SandboxError(GradingError):
    """The implementation's process timed out, crashed, ran out of memory or sent unreadable data."""


@dataclass(frozen=True)
class Ref:
    """Stands for an object built inside the implementation (see ``objects=`` of ``run_module``)."""

    key: str


_SCALARS = (bool, int, float, str)  # checked in this order; subclasses (numpy floats, ...) become builtins


def to_wire(obj: Any, depth: int = 0) -> Any:
    """Reduce ``obj`` to plain data: tensors are detached plain CPU copies; other objects become a note."""
    if depth > 20:
        return {"__object__": "too deeply nested"}
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        if type(t) is not torch.Tensor:
            t = t.as_subclass(torch.Tensor)
        return t.cpu().clone() if t.device.type != "cpu" else t.clone()
    if isinstance(obj, Ref):
        return {"__ref__": obj.key}
    if obj is None or isinstance(obj, torch.dtype):
        return obj
    for kind in _SCALARS:
        if isinstance(obj, kind):
            return kind(obj)
    if type(obj).__module__ == "numpy" and hasattr(obj, "dtype"):  # numpy arrays and scalars
        try:
            return torch.as_tensor(obj).clone()
        except Exception:
            return {"__object__": type(obj).__name__}
    if isinstance(obj, torch.Size):
        return tuple(int(s) for s in obj)
    if isinstance(obj, (list, tuple)):
        out = [to_wire(o, depth + 1) for o in obj]
        return tuple(out) if isinstance(obj, tuple) else out
    if isinstance(obj, dict):
        return {(k if isinstance(k, (str, int)) else repr(k)): to_wire(v, depth + 1) for k, v in obj.items()}
    return {"__object__": type(obj).__name__}


def from_wire(obj: Any) -> Any:
    """Inverse of :func:`to_wire` for the parts that have one (``Ref``)."""
    if isinstance(obj, dict):
        if set(obj) == {"__ref__"}:
            return Ref(obj["__ref__"])
        return {k: from_wire(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [from_wire(o) for o in obj]
    if isinstance(obj, tuple):
        return tuple(from_wire(o) for o in obj)
    return obj


def dumps(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(to_wire(obj), buf)
    return buf.getvalue()


def loads(data: bytes) -> Any:
    """Read bytes written by :func:`dumps`; only plain data and tensors are accepted (``weights_only``)."""
    return from_wire(torch.load(io.BytesIO(data), weights_only=True, map_location="cpu"))


def write_frame(fd: int, obj: Any) -> None:
    data = dumps(obj)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytes:
    chunks, got = [], 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, deadline: float | None = None, max_bytes: int = MAX_FRAME) -> Any:
    """Read one frame; ``TimeoutError`` past ``deadline`` (``time.monotonic``), ``EOFError`` on close,
    ``ValueError`` for an oversized or unreadable frame."""
    (n,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    if n > max_bytes:
        raise ValueError(f"garbage instead of a reply (a frame header announcing {n} bytes, more than {max_bytes})")
    data = _read_exact(fd, n, deadline)
    try:
        return loads(data)
    except Exception as e:  # the peer's bytes are untrusted: any failure here is "garbage"
        raise ValueError(f"garbage instead of a reply (unreadable: {type(e).__name__}: {str(e)[:160]})") from None
