"""A copy of the ``tfmcourse`` package in which the graded chapter's reference is not there.

The sandbox worker imports this copy instead of the real package, so a submission that does
``from tfmcourse.attention import scaled_dot_product_attention`` gets a stub that raises
``NotImplementedError`` and cannot read the reference source (the real files are hidden by the mount
namespace; see SECURITY.md). Every graded name is replaced in the module that defines it: a function
keeps its signature and docstring and raises; a class keeps its bases and docstring and raises on
construction. Both carry ``__tfm_stub__ = True`` so the grader can say why such a name scores 0.
No ``__pycache__`` is copied (it would hold the reference bytecode).
"""
from __future__ import annotations

import ast
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import tfmcourse

from . import interfaces

__all__ = ["stub_module_source", "stubbed_package"]

PACKAGE_DIR = Path(tfmcourse.__file__).resolve().parent


def _message(module: str, name: str, chapter: str) -> str:
    return (f"{module}.{name} is disabled while {chapter} is graded: the grader tests your notebook's "
            f"own {name}")


def stub_module_source(source: str, names: set[str], module: str, chapter: str) -> str:
    """``source`` with the top-level functions and classes in ``names`` replaced by raising stubs."""
    tree = ast.parse(source)
    found = set()
    for i, node in enumerate(tree.body):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) or node.name not in names:
            continue
        found.add(node.name)
        doc = ast.get_docstring(node)
        raise_ = ast.parse(f"raise NotImplementedError({_message(module, node.name, chapter)!r})").body
        head = [ast.Expr(ast.Constant(doc))] if doc else []
        if isinstance(node, ast.ClassDef):
            init = ast.parse("def __init__(self, *args, **kwargs):\n    pass").body[0]
            init.body = raise_
            node.body = head + ast.parse("__tfm_stub__ = True").body + [init]
            node.decorator_list = []
        else:
            node.body = head + raise_
            node.decorator_list = []
        tree.body[i] = node
    missing = names - found
    for name in sorted(missing):
        tree.body.append(ast.parse(f"def {name}(*args, **kwargs):\n"
                                   f"    raise NotImplementedError({_message(module, name, chapter)!r})").body[0])
    for name in sorted(names):
        tree.body.append(ast.parse(f"{name}.__tfm_stub__ = True").body[0])
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def _fingerprint(chapter: str) -> str:
    h = hashlib.sha256(chapter.encode())
    for p in sorted(PACKAGE_DIR.rglob("*.py")):
        st = p.stat()
        h.update(f"{p.relative_to(PACKAGE_DIR)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def stubbed_package(chapter: str, root: str | Path) -> Path:
    """Build (or reuse) ``root/tfmcourse-stub-<chapter>-<fingerprint>/tfmcourse`` and return that package dir.

    ``root`` is a folder private to the grader (mode 0700: the copy holds every *other* chapter's
    reference). Inside it the copy is readable (0755/0644) for the worker, which sees it bound into its
    sandbox; it is rebuilt whenever a source file of the package changes.
    """
    ch = interfaces.get_chapter(chapter)
    root = Path(root)
    base = root / f"tfmcourse-stub-{ch.id}-{_fingerprint(ch.id)}"
    pkg = base / "tfmcourse"
    if (base / "READY").exists():
        return pkg
    tmp = Path(tempfile.mkdtemp(prefix=f".{base.name}-", dir=root))
    shutil.copytree(PACKAGE_DIR, tmp / "tfmcourse", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.md"))
    hidden: dict[str, set[str]] = {}  # module -> names to stub (every chapter's for the capstone)
    for c in interfaces.stubbed_chapters(ch):
        for name, module in c.names.items():
            hidden.setdefault(module, set()).add(name)
    for module, names in hidden.items():
        rel = Path(*module.split(".")[1:]).with_suffix(".py")
        path = tmp / "tfmcourse" / rel
        if not path.exists():
            continue  # the reference module does not exist (yet): nothing to hide
        path.write_text(stub_module_source(path.read_text(), names, module, ch.id))
    for dirpath, dirnames, filenames in os.walk(tmp):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644)
    (tmp / "READY").write_text("ok\n")
    try:
        os.rename(tmp, base)
    except OSError:  # another grader built it at the same time
        shutil.rmtree(tmp, ignore_errors=True)
    return pkg
