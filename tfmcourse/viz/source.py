"""Show a piece of the package's source in a notebook, without the exercise markers."""
from __future__ import annotations

import inspect
import textwrap

__all__ = ["source_of", "show_source"]

_MARKERS = ("# BEGIN SOLUTION", "# END SOLUTION")


def source_of(obj) -> str:
    """The source of a function, class or method, dedented, with ``# BEGIN/END SOLUTION`` lines removed."""
    lines = inspect.getsource(obj).splitlines()
    kept = [line for line in lines if not line.strip().startswith(_MARKERS)]
    return textwrap.dedent("\n".join(kept))


def show_source(obj):
    """Syntax-highlighted source of ``obj`` for display in Jupyter (an ``IPython.display.Code``)."""
    from IPython.display import Code

    return Code(source_of(obj), language="python")
