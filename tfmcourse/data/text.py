"""Text for the character-level language model, with no download: the Python standard library itself.

Every Python installation ships a few megabytes of carefully written source code with comments and
docstrings: :func:`stdlib_corpus` reads it (a sorted, deterministic selection of ``.py`` files). Users
bring their own text with :func:`load_text`. Then ids are split (:func:`train_val_split`) and cut into
training windows, either random ones (:func:`get_lm_batch`, as in nanoGPT) or a fixed set
(:class:`TokenWindowDataset`, which a ``DistributedSampler`` can shard).
"""
from __future__ import annotations

import functools
import os
import sysconfig
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["stdlib_corpus", "stdlib_files", "load_text", "train_val_split", "get_lm_batch", "TokenWindowDataset"]

# test suites hold deliberately broken files; site-packages is not the standard library; encodings are
# mostly code-point tables; _sysconfigdata is generated per machine
_SKIP_DIRS = {"test", "tests", "idle_test", "__pycache__", "site-packages", "dist-packages", "encodings"}
_SKIP_PREFIXES = ("_sysconfigdata", "__phello__", "__hello__")


def stdlib_files(root: str | os.PathLike | None = None) -> list[Path]:
    """The ``.py`` files the corpus is read from: top-level modules first, then packages, each sorted.

    Args:
        root: the standard-library directory (default: this interpreter's, ``sysconfig``'s ``stdlib``).
    """
    root = Path(root or sysconfig.get_paths()["stdlib"])
    if not root.is_dir():
        raise FileNotFoundError(f"standard library not found at {root}; pass a text file to load_text instead")
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not d.startswith(("config-", "."))]
        files += [Path(dirpath, f) for f in filenames if f.endswith(".py") and not f.startswith(_SKIP_PREFIXES)]
    rel = [f.relative_to(root) for f in files]
    return [root / r for r in sorted(rel, key=lambda r: (len(r.parts), r.as_posix()))]


@functools.lru_cache(maxsize=4)
def _corpus(root: str, max_chars: int) -> str:
    parts, total = [], 0
    for path in stdlib_files(root):
        try:
            text = path.read_text(encoding="utf-8")  # universal newlines: \r\n -> \n
        except (UnicodeDecodeError, OSError):
            continue  # a few stdlib files are deliberately not UTF-8; the corpus is text only
        text = f"# file: {path.relative_to(root).as_posix()}\n{text.rstrip()}\n\n"
        parts.append(text)
        total += len(text)
        if total >= max_chars:
            break
    corpus = "".join(parts)
    if len(corpus) > max_chars:
        cut = corpus.rfind("\n", 0, max_chars)  # end on a whole line
        corpus = corpus[:cut + 1 if cut >= 0 else max_chars]
    return corpus


def stdlib_corpus(max_chars: int = 2_000_000, *, root: str | os.PathLike | None = None) -> str:
    """Up to ``max_chars`` characters of the standard library's Python source, whole lines only.

    Files are concatenated in :func:`stdlib_files` order, each introduced by a ``# file: name.py`` line.
    The result is the same on every call for one installation (and cached in memory); another Python
    version gives a somewhat different text.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    corpus = _corpus(str(root or sysconfig.get_paths()["stdlib"]), int(max_chars))
    if not corpus:
        raise ValueError("no readable .py files found in the standard library; use load_text with your own file")
    return corpus


def load_text(path: str | os.PathLike) -> str:
    """Read a UTF-8 text file for training (a BOM is dropped, ``\\r\\n`` becomes ``\\n``)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"text file {str(p)!r} does not exist; check the path, or train on the built-in "
                                f"corpus by leaving the data path out")
    if p.is_dir():
        raise ValueError(f"{str(p)!r} is a directory; pass one text file (join several with e.g. "
                         f"`cat *.txt > corpus.txt`)")
    data = p.read_bytes()
    if not data.strip():
        raise ValueError(f"text file {str(p)!r} is empty; a language model needs some text to learn from")
    if b"\x00" in data[:8192]:
        raise ValueError(f"{str(p)!r} looks like a binary file (it contains NUL bytes); pass a plain text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{str(p)!r} is not valid UTF-8 (byte {e.start}); convert it first, e.g. "
                         f"`iconv -f latin1 -t utf-8 in.txt > out.txt`") from None
    return text.replace("\r\n", "\n")


def train_val_split(ids: Tensor, val_fraction: float = 0.1) -> tuple[Tensor, Tensor]:
    """Split a 1-D token stream: the first part trains, the last ``val_fraction`` validates.

    Contiguous (not shuffled) so that no window of the validation text is also seen in training.
    """
    if ids.dim() != 1:
        raise ValueError(f"expected a 1-D tensor of token ids, got shape {tuple(ids.shape)}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n_val = round(len(ids) * val_fraction)
    if val_fraction > 0:
        n_val = max(n_val, 1)
    if n_val >= len(ids):
        raise ValueError(f"{len(ids)} tokens are too few to keep a training part with val_fraction={val_fraction}")
    cut = len(ids) - n_val
    return ids[:cut], ids[cut:]


def _check_stream(data: Tensor, block_size: int) -> None:
    if data.dim() != 1:
        raise ValueError(f"expected a 1-D tensor of token ids, got shape {tuple(data.shape)}")
    if block_size < 1:
        raise ValueError(f"block_size must be positive, got {block_size}")
    if len(data) < block_size + 1:
        raise ValueError(f"a stream of {len(data)} tokens is too short for block_size={block_size} (it needs at "
                         f"least block_size + 1 tokens); use more text or a smaller block_size")


def get_lm_batch(data: Tensor, block_size: int, batch_size: int, *, generator: torch.Generator | None = None,
                 device: str | torch.device | None = None) -> tuple[Tensor, Tensor]:
    """``batch_size`` random windows of ``data`` and the same windows shifted by one token.

    ``y[b, t]`` is the token after ``x[b, t]``: the target of next-token prediction at every position.

    Shapes:
        ``data (N,)`` -> ``x (B, T)``, ``y (B, T)`` long, with ``T = block_size``.
    """
    _check_stream(data, block_size)
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)  # (B,)
    idx = starts[:, None] + torch.arange(block_size)  # (B, T)
    x, y = data[idx].long(), data[idx + 1].long()
    if device is not None and torch.device(device).type == "cuda":
        # pinned memory lets the copy overlap with compute
        return x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
    return (x.to(device), y.to(device)) if device is not None else (x, y)


class TokenWindowDataset(Dataset):
    """Fixed windows ``(x, y)`` of a token stream, ``stride`` apart (default: non-overlapping).

    Item ``i`` starts at ``i * stride``; ``y`` is ``x`` shifted by one. Being map-style, it works with
    ``DataLoader(shuffle=True)`` and ``DistributedSampler``.

    Shapes:
        item -> ``x (T,)``, ``y (T,)`` long, with ``T = block_size``.
    """

    def __init__(self, data: Tensor, block_size: int, stride: int | None = None) -> None:
        _check_stream(data, block_size)
        self.stride = block_size if stride is None else stride
        if self.stride < 1:
            raise ValueError(f"stride must be positive, got {self.stride}")
        self.data, self.block_size = data, block_size
        self.n = (len(data) - block_size - 1) // self.stride + 1

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        if not -self.n <= i < self.n:
            raise IndexError(f"window {i} out of range for {self.n} windows")
        start = (i % self.n) * self.stride
        chunk = self.data[start:start + self.block_size + 1].long()
        return chunk[:-1], chunk[1:]
