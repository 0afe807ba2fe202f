"""Every hidden suite states its chapter's requirements and maps each to the tests that exercise it.

``REQUIREMENTS: list[tuple[str, list[str]]]`` at the top of a suite pairs each requirement the exercise
states with the test functions that check it (the instructor guide renders these tables). Checked here,
without running anything: every requirement names at least one existing test, and every test function
serves at least one requirement.
"""
from __future__ import annotations

import ast

import pytest

from tfmcourse.grading.interfaces import GRADED
from tfmcourse.grading.sandbox import HIDDEN_DIR

SUITES = [ch for ch in GRADED.values() if (HIDDEN_DIR / ch.suite_file()).exists()]


def _parse(chapter) -> tuple[list, set[str]]:
    tree = ast.parse((HIDDEN_DIR / chapter.suite_file()).read_text())
    table = None
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == "REQUIREMENTS":
            table = ast.literal_eval(node.value)
    tests = {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    return table, tests


@pytest.mark.parametrize("chapter", SUITES, ids=[c.id for c in SUITES])
def test_requirements_map_to_tests(chapter):
    table, tests = _parse(chapter)
    assert table, f"{chapter.suite_file()} has no REQUIREMENTS table"
    listed = set()
    for requirement, names in table:
        assert isinstance(requirement, str) and requirement.strip() and names, (requirement, names)
        unknown = set(names) - tests
        assert not unknown, f"{requirement!r} names tests that do not exist: {sorted(unknown)}"
        listed |= set(names)
    assert tests <= listed, f"tests that serve no stated requirement: {sorted(tests - listed)}"


@pytest.mark.parametrize("chapter", SUITES, ids=[c.id for c in SUITES])
def test_every_test_says_what_it_checks(chapter):
    tree = ast.parse((HIDDEN_DIR / chapter.suite_file()).read_text())
    undocumented = [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
                    and not (ast.get_docstring(n) or "").strip()]
    assert not undocumented, f"tests without a one-line docstring (shown to students): {undocumented}"
