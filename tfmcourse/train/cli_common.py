"""What ``tfmcourse train | sample | eval`` share: one-line errors, runtime flags, help epilogs."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn

__all__ = ["Parser", "run_cli", "add_runtime_flags", "examples"]


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (and exit code 2), not usage + error."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def add_runtime_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", metavar="DEV",
                   help="auto | cpu | cuda | cuda:N | mps (default: auto = CUDA, then MPS, then CPU)")
    p.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")


def examples(doc: str | None) -> str:
    """The ``Examples::`` block of a module docstring, for an argparse epilog."""
    block = (doc or "").split("Examples::", 1)[-1].split("\n\n", 2)
    return "examples:\n" + block[1].rstrip() if len(block) > 1 else ""


def run_cli(prog: str, body: Callable[[list[str]], int], argv: list[str] | None) -> int:
    """Run ``body(argv)``; turn every failure into one line on stderr and a non-zero exit code.

    ``--debug`` anywhere in ``argv`` lets the exception through with its traceback.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        return int(body(argv) or 0)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2, already printed)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if "--debug" in argv:
            raise
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr)
        return 1


def _one_line(e: BaseException) -> str:
    # Our own errors (ValueError, missing files) already say what to do; anything else is unexpected.
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, (ValueError, OSError)):
        return text
    return f"{type(e).__name__}: {text} (rerun with --debug for the traceback)"
