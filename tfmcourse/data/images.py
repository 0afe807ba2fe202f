"""Images for the Vision Transformer (chapter 7), all offline.

* :func:`load_digits_split`: scikit-learn's bundled 8x8 handwritten digits (1,797 images, no download).
* :class:`ShapesDataset`: procedural circles, squares, triangles and crosses of any size.
* :func:`read_mnist_idx` and :func:`read_cifar10_batch`: readers for MNIST / CIFAR-10 files a user
  already has, which check the format and fail with a clear message instead of returning garbage.

Images are ``(N, C, H, W)`` tensors, labels ``(N,)`` long, as everywhere in ``tfmcourse``.
"""
from __future__ import annotations

import codecs
import gzip
import importlib
import io
import os
import pickle
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["ImageSplit", "load_digits_split", "ShapesDataset", "SHAPES", "read_mnist_idx", "read_cifar10_batch"]


class ImageSplit(NamedTuple):
    """Train and test images ``(N, C, H, W)`` float and labels ``(N,)`` long."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def load_digits_split(test_fraction: float = 0.2, seed: int = 0) -> ImageSplit:
    """scikit-learn's 8x8 digits, split per class (stratified) with a seeded shuffle.

    Pixels (0..16) are standardised with the mean and std of the *training* images, so both parts are
    about zero-mean, unit-variance and nothing is learnt from the test images.

    Shapes:
        ``x_* (N, 1, 8, 8)`` float32, ``y_* (N,)`` long; ``N_test`` is ``test_fraction`` of each class.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("load_digits_split needs scikit-learn: pip install scikit-learn "
                          "(or pip install 'tfmcourse[data]')") from None
    digits = load_digits()
    x, y = digits.images.astype(np.float32), digits.target.astype(np.int64)  # (N, 8, 8), (N,)
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        test.append(idx[:round(len(idx) * test_fraction)])
    is_test = np.zeros(len(y), dtype=bool)
    is_test[np.concatenate(test)] = True
    train_idx, test_idx = rng.permutation(np.flatnonzero(~is_test)), rng.permutation(np.flatnonzero(is_test))
    mean, std = x[train_idx].mean(), x[train_idx].std()
    x = torch.from_numpy((x - mean) / std).unsqueeze(1)  # (N, 1, 8, 8)
    y = torch.from_numpy(y)
    return ImageSplit(x[train_idx], y[train_idx], x[test_idx], y[test_idx])


SHAPES = ("circle", "square", "triangle", "cross")


def _draw(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """A filled shape of random size and position on a ``size x size`` canvas of zeros."""
    r = rng.uniform(0.2, 0.4) * size  # half-width of the shape
    cx, cy = rng.uniform(r, size - r, 2)  # the whole shape stays inside the canvas
    yy, xx = np.mgrid[0:size, 0:size] + 0.5  # pixel centres
    dx, dy = xx - cx, yy - cy
    if kind == 0:  # circle
        mask = dx ** 2 + dy ** 2 <= r ** 2
    elif kind == 1:  # square, a little smaller than the circle's bounding box so areas are alike
        mask = (np.abs(dx) <= 0.8 * r) & (np.abs(dy) <= 0.8 * r)
    elif kind == 2:  # triangle pointing up: width grows linearly from the apex to the base
        mask = (dy >= -r) & (dy <= r) & (np.abs(dx) <= (dy + r) / 2)
    else:  # cross (a plus sign) with arms a quarter of its width thick
        w = max(r / 4, 0.6)
        mask = ((np.abs(dx) <= w) & (np.abs(dy) <= r)) | ((np.abs(dy) <= w) & (np.abs(dx) <= r))
    return mask.astype(np.float32)


class ShapesDataset(Dataset):
    """``n`` noisy images of simple shapes; the label is the index of the shape in :data:`SHAPES`.

    Each image is one filled shape (random size and position, brightness 0.7..1) plus Gaussian
    noise. Classes are balanced (``n // 4`` each, the remainder spread) and shuffled. Everything is
    drawn once, from ``seed``, so the data set is the same on every machine.

    Args:
        n: number of images.
        image_size: height and width.
        seed: seeds the generator.
        noise: standard deviation of the pixel noise.

    Shapes:
        item -> image ``(1, H, W)`` float32, label ``()`` long.
    """

    classes = SHAPES

    def __init__(self, n: int, image_size: int = 16, seed: int = 0, *, noise: float = 0.1) -> None:
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        if image_size < 8:
            raise ValueError(f"image_size must be at least 8 pixels for the shapes to be recognisable, "
                             f"got {image_size}")
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        rng = np.random.default_rng(seed)
        labels = rng.permutation(np.arange(n) % len(SHAPES))
        images = np.stack([_draw(k, image_size, rng) * rng.uniform(0.7, 1.0) for k in labels])  # (N, H, W)
        images += noise * rng.standard_normal(images.shape, dtype=np.float32)
        self.images = torch.from_numpy(images.astype(np.float32)).unsqueeze(1)  # (N, 1, H, W)
        self.labels = torch.from_numpy(labels.astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return self.images[i], self.labels[i]


# ---- readers for files the user already has -------------------------------------------------------

def _read_bytes(path: str | os.PathLike, what: str) -> bytes:
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{what} file {str(p)!r} not found" + (" (it is a directory)" if p.is_dir() else "")
                                + "; pass the path of a file you have downloaded")
    data = p.read_bytes()
    if data[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{str(p)!r} is a damaged gzip file ({e}); download it again") from None
    return data


def _read_idx(path: str | os.PathLike, ndim: int, what: str) -> np.ndarray:
    """An unsigned-byte IDX array: magic ``00 00 08 ndim``, ``ndim`` big-endian uint32 sizes, data."""
    data = _read_bytes(path, what)
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise ValueError(f"{str(path)!r} is not an IDX file (bad magic number {data[:4].hex() or 'empty'}); expected "
                         f"an MNIST {what} file such as train-{what}-idx{ndim}-ubyte[.gz]")
    if data[2] != 0x08:
        raise ValueError(f"{str(path)!r} holds IDX type 0x{data[2]:02x}; only unsigned bytes (0x08) are supported")
    if data[3] != ndim:
        raise ValueError(f"{str(path)!r} has {data[3]} dimensions, an MNIST {what} file has {ndim}; "
                         f"did you swap the images and labels paths?")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{str(path)!r} is truncated inside its header; download it again")
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        state = "truncated" if len(data) - header < expected else "longer than its header says"
        raise ValueError(f"{str(path)!r} is {state}: header {shape} needs {expected} bytes of data, found "
                         f"{len(data) - header}; download it again")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def read_mnist_idx(images_path: str | os.PathLike, labels_path: str | os.PathLike, *,
                   image_size: tuple[int, int] | None = (28, 28), normalize: bool = False) -> tuple[Tensor, Tensor]:
    """Read MNIST-style IDX files (images and labels, each plain or gzip-compressed).

    Args:
        images_path, labels_path: e.g. ``train-images-idx3-ubyte.gz`` and ``train-labels-idx1-ubyte.gz``.
        image_size: the ``(H, W)`` the images must have (``None`` accepts any).
        normalize: return float images in ``[0, 1]`` instead of ``uint8``.

    Shapes:
        images ``(N, 1, H, W)`` uint8 (or float32), labels ``(N,)`` long.
    """
    images = _read_idx(images_path, 3, "images")  # (N, H, W)
    labels = _read_idx(labels_path, 1, "labels")  # (N,)
    if image_size is not None and images.shape[1:] != tuple(image_size):
        raise ValueError(f"{str(images_path)!r} holds {images.shape[1]}x{images.shape[2]} images but "
                         f"{image_size[0]}x{image_size[1]} were asked for; pass image_size=None to accept them")
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} images but {len(labels)} labels: the two files do not belong together")
    x = torch.from_numpy(images.copy()).unsqueeze(1)  # (N, 1, H, W)
    return (x.float() / 255.0 if normalize else x), torch.from_numpy(labels.astype(np.int64))


class _Refused(pickle.UnpicklingError):
    pass


class _SafeUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes and NumPy arrays only: a pickle can otherwise run any code."""

    def find_class(self, module: str, name: str):
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name in ("_reconstruct", "scalar"):
            return _numpy_attr("multiarray", name)
        if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
            return _numpy_attr("numeric", name)
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module == "_codecs" and name == "encode":  # how protocol 2 stores bytes written by Python 3
            return codecs.encode
        raise _Refused(f"refusing to load {module}.{name}: a CIFAR batch holds only arrays and lists")


def _numpy_attr(sub: str, name: str):
    try:
        mod = importlib.import_module(f"numpy._core.{sub}")  # NumPy >= 2
    except ImportError:
        mod = importlib.import_module(f"numpy.core.{sub}")
    return getattr(mod, name)


def read_cifar10_batch(path: str | os.PathLike, *, normalize: bool = False) -> tuple[Tensor, Tensor]:
    """Read one batch file of the CIFAR-10 "python version" (``data_batch_1`` .. ``_5``, ``test_batch``).

    The file is a pickle of ``{b"data": uint8 (N, 3072), b"labels": [N ints], ...}``; each row holds the
    red, green and blue 32x32 planes one after the other. It is read with an unpickler that accepts
    only arrays, so a malicious file cannot run code.

    Shapes:
        images ``(N, 3, 32, 32)`` uint8 (float32 in ``[0, 1]`` with ``normalize``), labels ``(N,)`` long.
    """
    raw = _read_bytes(path, "CIFAR-10 batch")
    hint = "expected a batch file from cifar-10-python.tar.gz, e.g. data_batch_1"
    try:
        batch = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except _Refused as e:
        raise ValueError(f"{str(path)!r} could not be read: {e}; {hint}") from None
    except Exception as e:  # truncated or not a pickle at all: EOFError, ValueError, KeyError, ...
        raise ValueError(f"{str(path)!r} is not a valid pickle ({type(e).__name__}: {e}); {hint}") from None
    if not isinstance(batch, dict):
        raise ValueError(f"{str(path)!r} holds a {type(batch).__name__}, not a dict; {hint}")
    batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
    labels = batch.get("labels", batch.get("fine_labels"))
    data = batch.get("data")
    if data is None or labels is None:
        raise ValueError(f"{str(path)!r} has keys {sorted(map(str, batch))} but needs 'data' and 'labels'; {hint}")
    data = np.asarray(data)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{str(path)!r}: 'data' is {data.dtype} of shape {data.shape}, expected uint8 (N, 3072) "
                         f"(N images of 3x32x32); {hint}")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError):
        raise ValueError(f"{str(path)!r}: 'labels' must be a list of class numbers; {hint}") from None
    if labels.shape != (len(data),):
        raise ValueError(f"{str(path)!r} has {len(data)} images but {labels.size} labels; the file is damaged")
    if labels.size and labels.min() < 0:
        raise ValueError(f"{str(path)!r} has negative labels; class numbers start at 0")
    x = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())  # (N, 3, 32, 32): planes R, G, B
    return (x.float() / 255.0 if normalize else x), torch.from_numpy(labels)
