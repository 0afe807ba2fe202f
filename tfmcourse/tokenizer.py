"""Tokenizers for the character-level language model: characters or UTF-8 bytes to integer ids.

* :class:`CharTokenizer` has one id per distinct character of a training text (sorted, so the same
  text always gives the same ids). Its vocabulary is small, but it cannot encode a character it has
  never seen: :meth:`CharTokenizer.encode` raises a ``ValueError`` naming it (there is no unknown id,
  since a silent ``<unk>`` would make ``decode(encode(x)) != x``).
* :class:`ByteTokenizer` has the 256 byte values as its vocabulary: it encodes any text losslessly,
  at the price of several ids for each non-ASCII character.

Both store themselves as plain JSON-able data (``state_dict()``), so a checkpoint can carry its
tokenizer without pickling objects; :func:`tokenizer_from_state_dict` rebuilds either kind.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from torch import Tensor

__all__ = ["Tokenizer", "CharTokenizer", "ByteTokenizer", "tokenizer_from_state_dict"]


class Tokenizer(Protocol):
    """What the training and sampling code needs from a tokenizer."""

    @property
    def vocab_size(self) -> int: ...
    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: Iterable[int] | Tensor) -> str: ...
    def state_dict(self) -> dict[str, Any]: ...


def _as_list(ids: Iterable[int] | Tensor) -> list[int]:
    if isinstance(ids, Tensor):
        if ids.dim() > 1:
            raise ValueError(f"decode takes one sequence of ids, got a tensor of shape {tuple(ids.shape)}; "
                             f"decode each row separately")
        return ids.tolist()
    return [int(i) for i in ids]


class CharTokenizer:
    """One id per character of a fixed alphabet.

    Args:
        chars: the distinct characters, in id order (usually built with :meth:`from_text`).
    """

    kind = "char"

    def __init__(self, chars: Sequence[str]) -> None:
        chars = list(chars)
        if not chars:
            raise ValueError("a CharTokenizer needs at least one character; build it from a non-empty text")
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise ValueError(f"every vocabulary entry must be a single character, got {bad[0]!r}")
        if len(set(chars)) != len(chars):
            dup = next(c for c in chars if chars.count(c) > 1)
            raise ValueError(f"character {dup!r} appears twice in the vocabulary")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """The sorted set of characters of ``text`` (sorted by code point, so it is deterministic)."""
        if not text:
            raise ValueError("cannot build a CharTokenizer from an empty text")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of ``text``; a character outside the vocabulary raises ``ValueError``."""
        stoi = self.stoi
        try:
            return [stoi[c] for c in text]
        except KeyError as e:
            c = e.args[0]
            raise ValueError(f"character {c!r} (U+{ord(c):04X}, first at position {text.index(c)}) is not in "
                             f"this CharTokenizer's vocabulary of {self.vocab_size} characters; build the "
                             f"tokenizer from a text that contains it, or use ByteTokenizer") from None

    def decode(self, ids: Iterable[int] | Tensor) -> str:
        """The characters of ``ids`` (a list or a 1-D tensor)."""
        ids = _as_list(ids)
        n = self.vocab_size
        for i in ids:
            if not 0 <= i < n:
                raise ValueError(f"id {i} is outside this CharTokenizer's vocabulary (0..{n - 1})")
        return "".join(self.chars[i] for i in ids)

    def state_dict(self) -> dict[str, Any]:
        """``{"kind": "char", "chars": [...]}``: plain data a checkpoint or JSON file can hold."""
        return {"kind": self.kind, "chars": list(self.chars)}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> CharTokenizer:
        if state.get("kind") != cls.kind or "chars" not in state:
            raise ValueError(f"not a CharTokenizer state (expected kind 'char' and 'chars'), got keys {sorted(state)}")
        return cls(state["chars"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and other.chars == self.chars

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


class ByteTokenizer:
    """The UTF-8 bytes of a text as ids ``0..255``: any text, no training, lossless round trip.

    ``decode`` of ids that are not valid UTF-8 (a model may sample such a sequence) replaces the bad
    bytes with U+FFFD instead of failing, so sampling never crashes.
    """

    kind = "byte"
    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        try:
            return list(text.encode("utf-8"))
        except UnicodeEncodeError as e:  # lone surrogates, e.g. from a badly decoded file
            raise ValueError(f"text is not encodable as UTF-8 at position {e.start} ({text[e.start]!r}); "
                             f"clean the text first") from None

    def decode(self, ids: Iterable[int] | Tensor) -> str:
        ids = _as_list(ids)
        for i in ids:
            if not 0 <= i < 256:
                raise ValueError(f"id {i} is not a byte (0..255)")
        return bytes(ids).decode("utf-8", errors="replace")

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> ByteTokenizer:
        if state.get("kind") != cls.kind:
            raise ValueError(f"not a ByteTokenizer state (expected kind 'byte'), got {state!r}")
        return cls()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ByteTokenizer)

    def __repr__(self) -> str:
        return "ByteTokenizer()"


def tokenizer_from_state_dict(state: dict[str, Any]) -> CharTokenizer | ByteTokenizer:
    """Rebuild a tokenizer stored with ``state_dict()`` (e.g. in a checkpoint's metadata)."""
    kinds = {"char": CharTokenizer, "byte": ByteTokenizer}
    kind = state.get("kind") if isinstance(state, dict) else None
    if kind not in kinds:
        raise ValueError(f"unknown tokenizer state {state!r}; expected kind 'char' or 'byte'")
    return kinds[kind].from_state_dict(state)
