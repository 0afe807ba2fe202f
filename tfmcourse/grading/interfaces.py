"""The registry of graded chapters: which names a student implements, and where the reference lives.

One chapter id links everything (``ch03``): the notebook ``chNN_<slug>.ipynb``, the hidden suite
``tests/hidden/test_chNN_<slug>.py`` and the names below. A submission for chapter N is loaded into a
namespace that already holds every *earlier* chapter's names from the reference package, so a mistake
in ch03 costs nothing in ch04.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Chapter", "CHAPTERS", "CAPSTONE", "GRADED", "get_chapter", "chapter_from_filename", "prerequisites",
           "stubbed_chapters",
           "reference_object", "reference_namespace", "module_of"]


@dataclass(frozen=True)
class Chapter:
    """One graded chapter: ``names`` maps each interface name to the reference module defining it."""

    id: str
    title: str
    slug: str
    names: dict[str, str]
    capstone: bool = False  # graded from the student's own pieces of every chapter (see CAPSTONE)

    @property
    def number(self) -> int:
        return int(self.id[2:])

    @property
    def modules(self) -> tuple[str, ...]:
        """Reference modules holding this chapter's names, in first-seen order."""
        return tuple(dict.fromkeys(self.names.values()))

    def suite_file(self) -> str:
        return f"test_{self.slug}.py"


_E, _N, _B, _A = "tfmcourse.embedding", "tfmcourse.norm", "tfmcourse.blocks", "tfmcourse.attention"
CHAPTERS: dict[str, Chapter] = {c.id: c for c in [
    Chapter("ch01", "Data flow", "ch01_data_flow",
            {"sinusoidal_encoding": _E, "TokenEmbedding": _E, "LearnedPositionalEmbedding": _E,
             "apply_rotary": _E}),
    Chapter("ch02", "Residuals and normalization", "ch02_residuals_norms",
            {"LayerNorm": _N, "RMSNorm": _N}),
    Chapter("ch03", "Queries, keys, values", "ch03_qkv",
            {"scaled_dot_product_attention": _A, "causal_mask": _A, "padding_mask": _A}),
    Chapter("ch04", "Multi-head attention", "ch04_multihead",
            {n: "tfmcourse.multihead" for n in
             ("AttentionHead", "MultiHeadAttentionLoop", "MultiHeadAttention", "KVCache")}),
    # EncoderBlock is graded in ch05, once both of its sub-layers (ch04 attention, ch05 FFN) exist.
    Chapter("ch05", "FFN versus attention", "ch05_ffn",
            {"FeedForward": "tfmcourse.ffn", "SwiGLU": "tfmcourse.ffn", "EncoderBlock": _B}),
    # The training step and evaluation loop are graded with grader-built models, optimizers and scalers
    # (tfmcourse.grading.fixtures), so they cost nothing if DecoderBlock or the schedule is wrong.
    Chapter("ch06", "Training loops", "ch06_training",
            {"DecoderBlock": _B, "param_groups": "tfmcourse.optim",
             "warmup_cosine_lr": "tfmcourse.train.schedule", "train_step": "tfmcourse.train.step",
             "evaluate": "tfmcourse.train.step"}),
    Chapter("ch07", "Vision Transformer", "ch07_vit",
            {"patchify": "tfmcourse.vit", "PatchEmbedding": "tfmcourse.vit", "ViT": "tfmcourse.vit"}),
]}

# The capstone assembles the student's own pieces of every chapter (their notebooks, submitted together in
# one folder) into a GPT and a ViT: nothing comes from the reference, which is stubbed out whole.
CAPSTONE = Chapter("ch08", "Capstone", "ch08_capstone", {"top_p_filter": "tfmcourse.sampling"}, capstone=True)
GRADED: dict[str, Chapter] = {**CHAPTERS, CAPSTONE.id: CAPSTONE}

_CHAPTER_RE = re.compile(r"(?:^|[^a-z0-9])(ch\d\d)(?:_|\b)", re.I)


def get_chapter(chapter: str | Chapter) -> Chapter:
    """The :class:`Chapter` for ``"ch03"`` (also accepts ``"3"`` or a slug like ``"ch03_qkv"``)."""
    if isinstance(chapter, Chapter):
        return chapter
    key = str(chapter).strip().lower()
    if key.isdigit():
        key = f"ch{int(key):02d}"
    key = key[:4]
    if key not in GRADED:
        raise KeyError(f"unknown chapter {chapter!r}; choose one of {', '.join(GRADED)}")
    return GRADED[key]


def chapter_from_filename(path: str | Path) -> Chapter | None:
    """The chapter named in a file name such as ``ch03_qkv.ipynb`` (``None`` if there is none)."""
    m = _CHAPTER_RE.search(Path(path).name)
    return GRADED.get(m.group(1).lower()) if m else None


def stubbed_chapters(chapter: str | Chapter) -> list[Chapter]:
    """The chapters whose reference is hidden while ``chapter`` is graded: itself, or all for the capstone."""
    ch = get_chapter(chapter)
    return list(GRADED.values()) if ch.capstone else [ch]


def prerequisites(chapter: str | Chapter) -> list[tuple[str, str]]:
    """``(name, module)`` of every earlier chapter's interface, oldest first (none for the capstone, which
    uses the student's own)."""
    ch = get_chapter(chapter)
    if ch.capstone:
        return []
    return [(n, mod) for c in CHAPTERS.values() if c.number < ch.number for n, mod in c.names.items()]


def module_of(name: str) -> str:
    """The reference module of an interface name (any chapter)."""
    for c in CHAPTERS.values():
        if name in c.names:
            return c.names[name]
    raise KeyError(f"{name!r} is not an interface name of any chapter")


def reference_object(name: str, module: str | None = None) -> Any:
    """Import ``name`` from its reference module; raises ``ImportError`` if it does not exist (yet)."""
    module = module or module_of(name)
    mod = importlib.import_module(module)
    try:
        return getattr(mod, name)
    except AttributeError:
        raise ImportError(f"{module} has no {name!r} (is that part of the reference written yet?)") from None


def reference_namespace(pairs: list[tuple[str, str]]) -> tuple[dict[str, Any], list[str]]:
    """Build ``{name: reference object}`` for ``(name, module)`` pairs; also return the names not found."""
    ns: dict[str, Any] = {}
    missing: list[str] = []
    for name, module in pairs:
        try:
            ns[name] = reference_object(name, module)
        except ImportError:
            missing.append(name)
    return ns, missing
