"""Numbers in the chapters' prose come from the cells that compute them, so they cannot drift.

A measured number (an accuracy, a time, a variance) is computed by a code cell and stored with myst-nb's
``glue("key", value, display=False)``; the prose shows it with ``{glue:text}`key:format```. The book build
(``--warningiserror``) fails on a reference to a key that no cell glued. These static checks, fast enough
for every test run, catch what the build does not:

* every glue reference in a chapter names a key that the same chapter glues, and every glued key is shown;
* no hand-typed percentage or running time is left in the prose, where the next build would print
  another value beside it (the kind of drift this file exists for: "both ViTs reach 95 %" beside a
  printed 94.2 %, "well under a minute" beside 65 s). Constants that are not measured (a format's
  relative step, a dropout rate) go in math, ``$0.8\\%$``, or in code.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(BOOK.glob("ch0*.md")) + [BOOK / "intro.md"]

CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```", re.S | re.M)
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
DISPLAY_MATH = re.compile(r"^\$\$.*?^\$\$", re.S | re.M)
INLINE_MATH = re.compile(r"\$[^$\n]+\$")
INLINE_CODE = re.compile(r"`[^`\n]*`")
GLUE_REF = re.compile(r"\{glue(?::\w+)?\}`([A-Za-z_][\w]*)(?::[^`]*)?`")
GLUE_CALL = re.compile(r"""\bglue\(\s*(f?)["']([^"']+)["']""")
# a measured quantity typed by hand: "95 %", "94.2%", "65 s", "3 seconds", "a minute", "under a minute"
HAND_TYPED = re.compile(
    r"\b\d[\d,.]*\s?%"
    r"|\b\d[\d,.]*\s?(?:s|secs?|seconds?|minutes?|min|ms)\b"
    r"|\b(?:under|within|in|about|than) (?:a|one|half a) minute\b"
    r"|\ba few seconds\b")


def _prose(text: str) -> str:
    """The chapter without code cells, fenced blocks, math and inline code, glue references kept."""
    text = FENCE.sub("", text)
    text = DISPLAY_MATH.sub("", text)
    text = INLINE_MATH.sub("", text)
    refs = GLUE_REF.findall(text)  # keep glue references, drop other inline code
    text = INLINE_CODE.sub("", GLUE_REF.sub("GLUE", text))
    return text, refs


def _glued_keys(text: str) -> set[re.Pattern]:
    """Patterns of the keys glued by the chapter's code cells (f-string keys become wildcards)."""
    keys = set()
    for cell in CODE_CELL.findall(text):
        for is_f, key in GLUE_CALL.findall(cell):
            keys.add(re.compile(re.sub(r"\\\{[^}]*\\\}", r"\\w+", re.escape(key)) if is_f else re.escape(key)))
    return keys


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_glue_reference_is_glued_by_the_chapter(chapter):
    text = chapter.read_text()
    _, refs = _prose(text)
    keys = _glued_keys(text)
    missing = sorted({r for r in refs if not any(k.fullmatch(r) for k in keys)})
    assert not missing, f"{chapter.name}: the prose shows {missing}, which no code cell glues"
    unused = sorted(k.pattern for k in keys if not any(k.fullmatch(r) for r in refs))
    assert not unused, f"{chapter.name}: glued but never shown: {unused}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_no_hand_typed_measurement_in_the_prose(chapter):
    prose, _ = _prose(chapter.read_text())
    found = []
    for lineno, line in enumerate(prose.splitlines(), 1):
        found += [m.group(0) for m in HAND_TYPED.finditer(line)]
    assert not found, (f"{chapter.name}: hand-typed measurements {found}; compute them in a cell and show "
                       f"them with {{glue:text}}`key:format` (constants go in math or code)")


def test_the_checks_catch_the_drift_they_are_for():
    sample = ("Both ViTs reach 95 % test accuracy in well under a minute; the printed value is "
              "{glue:text}`acc_cls:.1%` after 65 s. A constant stays in math: $2^{-7} \\approx 0.8\\%$.")
    prose, refs = _prose(sample)
    assert refs == ["acc_cls"]
    assert [m.group(0) for m in HAND_TYPED.finditer(prose)] == ["95 %", "under a minute", "65 s"]
    cell = '```{code-cell} ipython3\nglue("acc_cls", 0.9, display=False)\nglue(f"acc_{pool}", 1)\n```\n'
    keys = _glued_keys(cell)
    assert any(k.fullmatch("acc_mean") for k in keys) and any(k.fullmatch("acc_cls") for k in keys)
    assert not any(k.fullmatch("seconds_cls") for k in keys)
