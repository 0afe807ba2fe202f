"""argparse types shared by the grading commands (grade, gradescope, export)."""
from __future__ import annotations

import argparse
import math
from typing import Callable

__all__ = ["positive"]


def positive(kind: type = float) -> Callable[[str], float | int]:
    """An argparse ``type`` that accepts a finite number above 0 (a whole one for ``int``), and says why not."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a number above 0 (got {text})")
        return value

    parse.__name__ = f"positive_{kind.__name__}"  # argparse names the type in its messages
    return parse
