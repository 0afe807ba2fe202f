"""The ``tfmcourse`` command line: one entry point, one module per group of subcommands.

Each subcommand lives next to the code it drives and exposes ``main(argv) -> int``; this file only
dispatches, so ``tfmcourse --help`` stays fast (nothing heavy is imported until a command runs).
"""
from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("tfmcourse.train.cli", "train a GPT, an encoder-decoder or a ViT on offline data"),
    "sample": ("tfmcourse.train.cli_sample", "generate text from a GPT checkpoint"),
    "eval": ("tfmcourse.train.cli_eval", "evaluate a checkpoint on its validation data"),
    "bench": ("tfmcourse.bench", "training-throughput benchmark against PyTorch / HF / timm peers"),
    "grade": ("tfmcourse.grading.cli", "grade notebooks with the hidden suites, in a sandbox"),
    "release": ("tfmcourse.release", "build the student release: exercises + stubbed package"),
    "export": ("tfmcourse.grading.export", "write grades as a Canvas or Moodle import file, or the course CSV"),
    "report": ("tfmcourse.grading.report", "draw a class report: scores, test pass rates, common mistakes"),
    "gradescope": ("tfmcourse.grading.gradescope", "write a Gradescope autograder zip for a chapter"),
}
# Commands that need the course's source checkout (hidden suites, solutions/, exercises/): a student
# release, which has a tfmcourse/_release.py, neither lists nor runs them.
INSTRUCTOR_ONLY = ("grade", "release", "export", "report", "gradescope")


def plain(text: str) -> str:
    """A docstring for ``--help``: reStructuredText's double backticks and roles (e.g. ``:mod:``) removed."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "")


def _student_release() -> bool:
    return Path(__file__).with_name("_release.py").is_file()  # no import: --help stays fast


def _commands() -> dict[str, tuple[str, str]]:
    if _student_release():
        return {k: v for k, v in COMMANDS.items() if k not in INSTRUCTOR_ONLY}
    return COMMANDS


def _usage() -> str:
    lines = ["usage: tfmcourse COMMAND [options]   (tfmcourse COMMAND --help for details)", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in _commands().items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from . import __version__
        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name in INSTRUCTOR_ONLY and _student_release():
        print(f"tfmcourse {name}: an instructor command; it needs the course's source checkout (hidden tests, "
              f"solutions), which this student install does not have", file=sys.stderr)
        return 2
    if name not in COMMANDS:
        print(f"tfmcourse: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(COMMANDS[name][0])
    except ModuleNotFoundError as e:
        print(f"tfmcourse {name}: not available in this installation ({e})", file=sys.stderr)
        return 2
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
