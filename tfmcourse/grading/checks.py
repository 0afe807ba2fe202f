"""Assertions for hidden suites whose failure messages read well in a student's feedback.

They run in the trusted grader on values the implementation returned; expected values come from the
reference or PyTorch, computed by the suite itself.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["expect_tensor", "assert_close", "assert_close_float32_ok", "assert_finite", "assert_mixes_tokens",
           "assert_on_meta", "default_tol"]


def default_tol(dtype: torch.dtype) -> tuple[float, float]:
    """``(rtol, atol)`` suited to comparing results computed in ``dtype``."""
    return {torch.float64: (1e-7, 1e-9), torch.float32: (1e-4, 1e-5), torch.bfloat16: (2e-2, 2e-2),
            torch.float16: (5e-3, 5e-3)}.get(dtype, (0.0, 0.0))


def expect_tensor(value: Any, what: str, *, shape: tuple | None = None, dtype: torch.dtype | None = None) -> Tensor:
    """Check ``value`` is a tensor (of ``shape`` / ``dtype`` when given) and return it."""
    if isinstance(value, dict) and set(value) == {"__object__"}:  # a non-data object came back from the sandbox
        raise AssertionError(f"{what}: expected a tensor, got an object of type {value['__object__']}")
    if not isinstance(value, Tensor):
        raise AssertionError(f"{what}: expected a tensor, got {type(value).__name__}"
                             + (" (did you return a tuple by mistake?)" if isinstance(value, (tuple, list)) else ""))
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise AssertionError(f"{what}: expected shape {tuple(shape)}, got {tuple(value.shape)}")
    if dtype is not None and value.dtype != dtype:
        raise AssertionError(f"{what}: expected dtype {dtype}, got {value.dtype}")
    return value


def assert_finite(value: Tensor, what: str) -> None:
    bad = ~torch.isfinite(value.float())
    if bad.any():
        idx = tuple(int(i) for i in bad.nonzero()[0])
        raise AssertionError(f"{what}: {int(bad.sum())} NaN/inf value(s), the first at index {idx}")


def assert_close(actual: Any, expected: Tensor, what: str, *, rtol: float | None = None, atol: float | None = None,
                 check_dtype: bool = True) -> None:
    """``actual`` equals ``expected`` in shape, dtype (optional) and values within tolerance."""
    actual = expect_tensor(actual, what, shape=tuple(expected.shape), dtype=expected.dtype if check_dtype else None)
    d_rtol, d_atol = default_tol(expected.dtype)
    rtol, atol = (d_rtol if rtol is None else rtol), (d_atol if atol is None else atol)
    if expected.dtype == torch.bool or not expected.is_floating_point():
        if not torch.equal(actual.to(expected.dtype), expected):
            bad = (actual.to(expected.dtype) != expected).nonzero()
            raise AssertionError(f"{what}: {len(bad)} entries differ from the expected values, the first at "
                                 f"index {tuple(int(i) for i in bad[0])}")
        return
    a, e = actual.double(), expected.double()
    same_nan = torch.isnan(a) == torch.isnan(e)
    if not bool(same_nan.all()):
        where = tuple(int(i) for i in (~same_nan).nonzero()[0])
        got = "NaN" if bool(torch.isnan(a[where])) else f"{float(a[where]):.4g}"
        raise AssertionError(f"{what}: got {got} at index {where} where {float(e[where]):.4g} was expected")
    diff = (a - e).abs().nan_to_num(0.0)
    bound = atol + rtol * e.abs().nan_to_num(0.0)
    over = diff > bound
    if bool(over.any()):
        where = tuple(int(i) for i in over.nonzero()[0])
        raise AssertionError(f"{what}: differs from the expected values at {int(over.sum())} of {e.numel()} entries; "
                             f"max abs difference {float(diff.max()):.3g} (e.g. index {where}: got {float(a[where]):.5g}, "
                             f"expected {float(e[where]):.5g}; rtol={rtol:g}, atol={atol:g})")


def assert_close_float32_ok(actual: Any, expected: Tensor, what: str, **kw: Any) -> None:
    """:func:`assert_close`, with float64 expectations compared at rtol=1e-5, atol=1e-6: tight enough for any
    formula mistake, loose enough for an implementation that computes a float64 input in float32 (which
    has a test of its own)."""
    if expected.dtype == torch.float64:
        kw = {"rtol": 1e-5, "atol": 1e-6, **kw}
    assert_close(actual, expected, what, **kw)


def assert_mixes_tokens(out: Any, out_changed: Any, what: str) -> None:
    """The anchor of tests that compare an implementation with itself: when the first token of the input
    changes, the other tokens' outputs must change too (attention mixes tokens), so that returning the
    input, or anything that ignores the other tokens, earns nothing."""
    out, out_changed = expect_tensor(out, what), expect_tensor(out_changed, what, shape=tuple(out.shape))
    if float((out[:, 1:] - out_changed[:, 1:]).abs().max()) < 1e-6:
        raise AssertionError(f"{what}: the other tokens' outputs do not change when the first token changes; "
                             f"attention must mix the tokens")


def assert_on_meta(value: Any, what: str) -> None:
    """``value`` is a tensor on PyTorch's ``meta`` device (shapes only, no data): what a function given
    ``device="meta"`` must build. Meta tensors do not travel back from the student's process, so the reply
    is the note that says what it was; a real (CPU) tensor means ``device=`` was ignored, which on a GPU
    puts the result on the wrong device."""
    note = value.get("__object__", "") if isinstance(value, dict) else ""
    if isinstance(value, Tensor) and value.device.type == "meta":  # in-process
        return
    if "meta" not in str(note):
        got = f"a tensor on {value.device}" if isinstance(value, Tensor) else (note or type(value).__name__)
        raise AssertionError(f"{what}: expected a tensor on the requested device 'meta', got {got}; pass "
                             f"device= to the tensors you create")
