"""What crosses between the trusted grader and an implementation under test, and the errors it raises.

Messages are plain data: ``dict``/``list``/``tuple``/``str``/numbers/``None``/``torch.dtype`` and dense
tensors, in a small binary format of this module's own (no pickle, no ``torch.load``). Every value a
worker sends is untrusted, so the decoder checks before it materialises anything:

* a frame (an 8-byte big-endian length, then the payload) is at most ``Limits.frame_bytes`` long;
* a container announces its length, which must fit in the bytes that are left (one byte per element at
  least), and the whole message holds at most ``Limits.items`` values, nested at most ``Limits.depth``;
* a tensor is dtype + shape + exactly ``numel * itemsize`` bytes of dense data: no strides, views,
  storages or sparse layouts exist in the format, so a stride-0 tensor of 2**32 elements cannot be
  sent for a few bytes; the shape's element count is checked against the bytes present first;
* decoding is one linear pass over the bytes (no code runs, nothing is slow to decode).

Anything else is "garbage instead of a reply" (a ``ValueError``), charged to the submission.
"""
from __future__ import annotations

import errno
import math
import os
import select
import struct
import time
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["GradingError", "StudentError", "MissingName", "InterfaceError", "SandboxError", "Ref", "WireLimits",
           "to_wire", "dumps", "loads", "write_frame", "read_frame", "MAX_FRAME"]

MAX_FRAME = 64 * 2**20  # bytes; the largest legitimate reply of the hidden suites is far below this
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


@dataclass(frozen=True)
class WireLimits:
    """What one decoded message may hold."""

    frame_bytes: int = MAX_FRAME
    items: int = 1_000_000  # values in all (containers, scalars, tensors)
    depth: int = 32
    tensor_dims: int = 16


# dtypes a message may carry, by a fixed code (the order is the format: append only)
_DTYPES = (torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32, torch.int16,
           torch.int8, torch.uint8, torch.bool, torch.complex64, torch.complex128)
_DTYPE_CODE = {d: i for i, d in enumerate(_DTYPES)}
_I64, _F64, _U32, _U8 = struct.Struct(">q"), struct.Struct(">d"), struct.Struct(">I"), struct.Struct(">B")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_MAX_INT_DIGITS = 4300  # Python's own limit for str <-> int


def _note(what: str) -> dict:
    return {"__object__": what}


def to_wire(obj: Any, depth: int = 0) -> Any:
    """Reduce ``obj`` to plain data: tensors become dense plain CPU tensors; other objects become a note."""
    if depth > 20:
        return _note("too deeply nested")
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        if type(t) is not torch.Tensor:
            t = t.as_subclass(torch.Tensor)
        if t.layout != torch.strided or t.dtype not in _DTYPE_CODE or t.device.type == "meta" or t.is_quantized:
            return _note(f"tensor ({t.layout}, {t.dtype}, {t.device.type}) that cannot be sent")
        return t.cpu().contiguous() if t.device.type != "cpu" else t.contiguous()
    if isinstance(obj, Ref):
        return obj
    if obj is None or isinstance(obj, torch.dtype):
        return obj
    for kind in (bool, int, float, str):  # in this order; subclasses (numpy floats, ...) become builtins
        if isinstance(obj, kind):
            return kind(obj)
    if type(obj).__module__ == "numpy" and hasattr(obj, "dtype"):  # numpy arrays and scalars
        try:
            return to_wire(torch.as_tensor(obj), depth + 1)
        except Exception:
            return _note(type(obj).__name__)
    if isinstance(obj, torch.Size):
        return tuple(int(s) for s in obj)
    if isinstance(obj, (list, tuple)):
        out = [to_wire(o, depth + 1) for o in obj]
        return tuple(out) if isinstance(obj, tuple) else out
    if isinstance(obj, dict):
        return {(k if isinstance(k, (str, int)) and not isinstance(k, bool) else repr(k)): to_wire(v, depth + 1)
                for k, v in obj.items()}
    return _note(type(obj).__name__)


# -- encoding (either side) -------------------------------------------------------------------------------
def _encode(obj: Any, out: list[bytes]) -> None:
    if obj is None:
        out.append(b"N")
    elif obj is True or obj is False:
        out.append(b"T" if obj else b"F")
    elif isinstance(obj, int):
        if _INT64_MIN <= obj <= _INT64_MAX:
            out += [b"i", _I64.pack(obj)]
        else:
            _encode_str(b"L", str(obj), out)
    elif isinstance(obj, float):
        out += [b"f", _F64.pack(obj)]
    elif isinstance(obj, str):
        _encode_str(b"s", obj, out)
    elif isinstance(obj, torch.dtype):
        out += [b"D", _U8.pack(_DTYPE_CODE[obj])]
    elif isinstance(obj, Ref):
        _encode_str(b"R", obj.key, out)
    elif isinstance(obj, torch.Tensor):
        t = obj.contiguous()
        out += [b"X", _U8.pack(_DTYPE_CODE[t.dtype]), _U8.pack(t.dim())]
        out += [_I64.pack(int(s)) for s in t.shape]
        out.append(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, (list, tuple)):
        out += [b"l" if isinstance(obj, list) else b"t", _U32.pack(len(obj))]
        for o in obj:
            _encode(o, out)
    elif isinstance(obj, dict):
        out += [b"d", _U32.pack(len(obj))]
        for k, v in obj.items():
            _encode(k, out)
            _encode(v, out)
    else:
        raise TypeError(f"cannot send a {type(obj).__name__}")


def _encode_str(tag: bytes, s: str, out: list[bytes]) -> None:
    data = s.encode("utf-8", "surrogatepass")
    out += [tag, _U32.pack(len(data)), data]


def dumps(obj: Any) -> bytes:
    out: list[bytes] = []
    _encode(to_wire(obj), out)
    return b"".join(out)


# -- decoding (the trusted side reads untrusted bytes) ----------------------------------------------------
class _Reader:
    def __init__(self, data: bytes | bytearray, limits: WireLimits) -> None:
        self.buf = memoryview(data)
        self.pos, self.items, self.limits = 0, 0, limits

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise ValueError("truncated message")
        view = self.buf[self.pos:self.pos + n]
        self.pos += n
        return view

    def left(self) -> int:
        return len(self.buf) - self.pos

    def count(self, n: int = 1) -> None:
        self.items += n
        if self.items > self.limits.items:
            raise ValueError(f"more than {self.limits.items} values in one message")

    def length(self, per_item: int) -> int:
        (n,) = _U32.unpack(self.take(4))
        if n * per_item > self.left():
            raise ValueError(f"a length of {n} that the {self.left()} bytes left cannot hold")
        return n

    def text(self) -> str:
        return bytes(self.take(self.length(1))).decode("utf-8", "surrogatepass")


def _decode(r: _Reader, depth: int) -> Any:
    if depth > r.limits.depth:
        raise ValueError(f"nested deeper than {r.limits.depth}")
    r.count()
    tag = bytes(r.take(1))
    if tag == b"N":
        return None
    if tag in (b"T", b"F"):
        return tag == b"T"
    if tag == b"i":
        return _I64.unpack(r.take(8))[0]
    if tag == b"L":
        digits = r.text()
        if len(digits) > _MAX_INT_DIGITS:
            raise ValueError("an integer with too many digits")
        return int(digits)
    if tag == b"f":
        return _F64.unpack(r.take(8))[0]
    if tag == b"s":
        return r.text()
    if tag == b"R":
        return Ref(r.text())
    if tag == b"D":
        code = _U8.unpack(r.take(1))[0]
        if code >= len(_DTYPES):
            raise ValueError(f"unknown dtype code {code}")
        return _DTYPES[code]
    if tag == b"X":
        return _decode_tensor(r)
    if tag in (b"l", b"t"):
        n = r.length(1)
        items = [_decode(r, depth + 1) for _ in range(n)]
        return items if tag == b"l" else tuple(items)
    if tag == b"d":
        n = r.length(2)
        out: dict = {}
        for _ in range(n):
            key = _decode(r, depth + 1)
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise ValueError(f"a dict key of type {type(key).__name__}")
            out[key] = _decode(r, depth + 1)
        return out
    raise ValueError(f"unknown tag {tag!r}")


def _decode_tensor(r: _Reader) -> torch.Tensor:
    code, ndim = _U8.unpack(r.take(1))[0], _U8.unpack(r.take(1))[0]
    if code >= len(_DTYPES):
        raise ValueError(f"unknown dtype code {code}")
    if ndim > r.limits.tensor_dims:
        raise ValueError(f"a tensor with {ndim} dimensions")
    shape = [_I64.unpack(r.take(8))[0] for _ in range(ndim)]
    if any(s < 0 for s in shape):
        raise ValueError(f"a tensor of negative size {shape}")
    dtype = _DTYPES[code]
    itemsize = torch.empty((), dtype=dtype).element_size()
    numel = math.prod(shape)  # exact (Python ints): a huge claimed shape is compared, never allocated
    if numel * itemsize > r.left():
        raise ValueError(f"a tensor of shape {tuple(shape)} whose data is not in the message")
    r.count(max(1, numel // 4096))  # big tensors count toward the message's budget too
    if numel == 0:
        return torch.empty(shape, dtype=dtype)
    raw = bytearray(r.take(numel * itemsize))  # a private, writable copy of exactly the announced bytes
    return torch.frombuffer(raw, dtype=torch.uint8).view(dtype).reshape(shape)


def loads(data: bytes | bytearray, limits: WireLimits | None = None) -> Any:
    """Decode one message; ``ValueError`` for anything that breaks the format or ``limits``."""
    r = _Reader(data, limits or WireLimits())
    obj = _decode(r, 0)
    if r.left():
        raise ValueError(f"{r.left()} bytes after the end of the message")
    return obj


# -- frames on a pipe, with deadlines both ways -------------------------------------------------------------
def write_frame(fd: int, obj: Any, deadline: float | None = None) -> None:
    """Send one frame; ``TimeoutError`` if the reader has not taken it by ``deadline`` (``time.monotonic``).

    With a deadline the descriptor is switched to non-blocking mode, so a peer that stops reading can
    never block the writer past it.
    """
    data = dumps(obj)
    view = memoryview(_HEADER.pack(len(data)) + data)
    if deadline is not None:
        os.set_blocking(fd, False)
    while view:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [fd], [], left)[1]:
                raise TimeoutError
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            continue
        except OSError as e:
            if e.errno == errno.EAGAIN:
                continue
            raise
        view = view[n:]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytearray:
    buf, got = bytearray(n), 0
    view = memoryview(buf)
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
        k = os.readv(fd, [view[got:got + (1 << 20)]])
        if not k:
            raise EOFError
        got += k
    return buf


def read_frame(fd: int, deadline: float | None = None, limits: WireLimits | None = None) -> Any:
    """Read one frame; ``TimeoutError`` past ``deadline`` (``time.monotonic``), ``EOFError`` on close,
    ``ValueError`` for an oversized or unreadable frame (nothing larger than announced is allocated)."""
    limits = limits or WireLimits()
    (n,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    if n > limits.frame_bytes:
        raise ValueError(f"garbage instead of a reply (a frame of {n} bytes, more than {limits.frame_bytes})")
    data = _read_exact(fd, n, deadline)
    try:
        return loads(data, limits)
    except (ValueError, struct.error, UnicodeDecodeError, RecursionError, OverflowError, RuntimeError) as e:
        raise ValueError(f"garbage instead of a reply ({str(e)[:160]})") from None
