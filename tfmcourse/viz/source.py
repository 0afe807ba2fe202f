"""Show a piece of the package's source in a notebook, unless it is the answer to an exercise.

The book prints code that students are not graded on (the model assembly, the attention dispatcher,
the training loop). Bodies marked ``# BEGIN SOLUTION chNN`` are what the graded notebooks ask for: the
book explains them in prose, maths and checks, and :func:`source_of` refuses to print them, so no
chapter can give an answer away by accident.
"""
from __future__ import annotations

import inspect
import re
import textwrap

__all__ = ["source_of", "show_source"]

_SOLUTION = re.compile(r"^\s*# BEGIN SOLUTION (ch\d\d)", re.MULTILINE)


def source_of(obj) -> str:
    """The dedented source of a function, class or method that is not a graded exercise.

    Raises:
        ValueError: if the source contains a ``# BEGIN SOLUTION chNN`` region.
    """
    text = inspect.getsource(obj)
    m = _SOLUTION.search(text)
    if m:
        name = getattr(obj, "__qualname__", repr(obj))
        raise ValueError(f"{name} holds the answer to a chapter {int(m[1][2:])} exercise; the book explains it "
                         f"instead of printing it (show a call, a shape or a check, not the source)")
    return textwrap.dedent(text)


def show_source(obj):
    """Syntax-highlighted source of ``obj`` for display in Jupyter (an ``IPython.display.Code``)."""
    from IPython.display import Code

    return Code(source_of(obj), language="python")
