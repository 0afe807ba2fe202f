"""Chapter 7 data: bundled digits, procedural shapes, and the MNIST / CIFAR-10 file readers."""
import gzip
import pickle

import numpy as np
import pytest
import torch

from tfmcourse.data import SHAPES, ShapesDataset, load_digits_split, read_cifar10_batch, read_mnist_idx

pytestmark = pytest.mark.ch07



# ---- scikit-learn digits -----------------------------------------------------------------------------

def test_digits_split_sizes_dtypes_and_normalisation():
    pytest.importorskip("sklearn")
    x_train, y_train, x_test, y_test = load_digits_split(0.2, seed=0)
    assert x_train.shape[1:] == x_test.shape[1:] == (1, 8, 8)
    assert len(x_train) + len(x_test) == 1797 and len(x_train) == len(y_train) and len(x_test) == len(y_test)
    assert abs(len(x_test) - 0.2 * 1797) < 10
    assert x_train.dtype == torch.float32 and y_train.dtype == y_test.dtype == torch.long
    assert abs(float(x_train.mean())) < 1e-4 and abs(float(x_train.std()) - 1) < 1e-3
    assert abs(float(x_test.mean())) < 0.1 and abs(float(x_test.std()) - 1) < 0.1
    assert set(y_train.tolist()) == set(y_test.tolist()) == set(range(10))


def test_digits_split_is_stratified_disjoint_and_seeded():
    pytest.importorskip("sklearn")
    s = load_digits_split(0.25, seed=1)
    train_counts = torch.bincount(s.y_train, minlength=10).float()
    test_counts = torch.bincount(s.y_test, minlength=10).float()
    frac = test_counts / (train_counts + test_counts)
    assert torch.all((frac - 0.25).abs() < 0.01)  # every class keeps its share
    flat_train = {tuple(r) for r in s.x_train.flatten(1).tolist()}
    # no image is in both parts (the few identical images of the data set apart)
    assert sum(tuple(r) in flat_train for r in s.x_test.flatten(1).tolist()) <= 3
    again = load_digits_split(0.25, seed=1)
    assert torch.equal(again.x_test, s.x_test) and torch.equal(again.y_train, s.y_train)
    other = load_digits_split(0.25, seed=2)
    assert not torch.equal(other.y_test, s.y_test)
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits_split(1.0)


# ---- procedural shapes ----------------------------------------------------------------------------------

def test_shapes_dataset_shapes_labels_and_determinism():
    ds = ShapesDataset(101, image_size=16, seed=0)
    assert len(ds) == 101 and ds.classes == SHAPES == ("circle", "square", "triangle", "cross")
    x, y = ds[0]
    assert x.shape == (1, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.long
    counts = torch.bincount(ds.labels, minlength=4)
    assert counts.max() - counts.min() <= 1  # balanced
    assert torch.equal(ShapesDataset(101, 16, seed=0).images, ds.images)
    assert not torch.equal(ShapesDataset(101, 16, seed=1).images, ds.images)
    assert ShapesDataset(3, image_size=32).images.shape == (3, 1, 32, 32)
    with pytest.raises(ValueError, match="image_size"):
        ShapesDataset(3, image_size=4)


def test_shapes_are_the_shapes_they_claim():
    ds = ShapesDataset(200, image_size=24, seed=3, noise=0.0)
    for img, label in zip(ds.images[:, 0], ds.labels):
        mask = img > 0
        rows, cols = torch.nonzero(mask, as_tuple=True)
        assert len(rows) >= 6
        bright = img[mask]
        assert torch.allclose(bright, bright[0].expand_as(bright)) and 0.7 <= float(bright[0]) <= 1.0
        box = mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        widths = box.sum(1)
        kind = SHAPES[label]
        if kind == "square":
            assert box.all()
        elif kind == "triangle":  # widens from the apex down to the base
            assert torch.all(widths[1:] >= widths[:-1]) and widths[0] < widths[-1]
        elif kind == "cross":  # empty corners, a full middle row and column
            assert not box[0, 0] and not box[-1, -1] and box.all(1).any() and box.all(0).any()
        else:  # circle: empty corners, widest in the middle, symmetric
            assert not box[0, 0] and not box[-1, -1] and widths.max() > widths[0]


def test_shapes_are_learnable_by_a_simple_classifier():
    knn = pytest.importorskip("sklearn.neighbors")
    train, test = ShapesDataset(1200, 16, seed=0), ShapesDataset(300, 16, seed=1)
    clf = knn.KNeighborsClassifier(5).fit(train.images.flatten(1).numpy(), train.labels.numpy())
    assert clf.score(test.images.flatten(1).numpy(), test.labels.numpy()) > 0.75  # chance is 0.25


# ---- MNIST IDX ------------------------------------------------------------------------------------------

def _idx(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


@pytest.fixture
def mnist(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    (tmp_path / "img").write_bytes(_idx(images))
    (tmp_path / "lbl").write_bytes(_idx(labels))
    (tmp_path / "img.gz").write_bytes(gzip.compress(_idx(images)))
    (tmp_path / "lbl.gz").write_bytes(gzip.compress(_idx(labels)))
    return tmp_path, images, labels


def test_read_mnist_plain_and_gzip(mnist):
    d, images, labels = mnist
    for img, lbl in [("img", "lbl"), ("img.gz", "lbl.gz"), ("img.gz", "lbl")]:
        x, y = read_mnist_idx(d / img, d / lbl)
        assert x.shape == (5, 1, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.long
        assert np.array_equal(x[:, 0].numpy(), images) and y.tolist() == [3, 1, 4, 1, 5]
    x, _ = read_mnist_idx(d / "img", d / "lbl", normalize=True)
    assert x.dtype == torch.float32 and torch.allclose(x * 255, torch.from_numpy(images).float()[:, None])


def test_read_mnist_other_image_size(tmp_path):
    (tmp_path / "i").write_bytes(_idx(np.zeros((2, 8, 6), np.uint8)))
    (tmp_path / "l").write_bytes(_idx(np.zeros(2, np.uint8)))
    with pytest.raises(ValueError, match="8x6 images but 28x28"):
        read_mnist_idx(tmp_path / "i", tmp_path / "l")
    assert read_mnist_idx(tmp_path / "i", tmp_path / "l", image_size=None)[0].shape == (2, 1, 8, 6)
    assert read_mnist_idx(tmp_path / "i", tmp_path / "l", image_size=(8, 6))[0].shape == (2, 1, 8, 6)


def test_read_mnist_malformed_files_raise(mnist):
    d, images, labels = mnist
    good = _idx(images)
    cases = {
        "bad_magic": (b"\x12\x34" + good[2:], "magic"),
        "float_type": (good[:2] + b"\x0d" + good[3:], "type 0x0d"),
        "truncated": (good[:-100], "truncated"),
        "too_long": (good + b"\x00", "longer"),
        "header_cut": (good[:10], "header"),
        "empty": (b"", "magic"),
        "broken_gzip": (gzip.compress(good)[:-20], "damaged gzip"),
        "corrupt_gzip": (gzip.compress(good)[:12] + b"\xff" * 40, "damaged gzip"),
    }
    for name, (content, match) in cases.items():
        (d / name).write_bytes(content)
        with pytest.raises(ValueError, match=match):
            read_mnist_idx(d / name, d / "lbl")
    with pytest.raises(ValueError, match="swap"):  # labels passed as images
        read_mnist_idx(d / "lbl", d / "img")
    (d / "lbl4").write_bytes(_idx(labels[:4]))
    with pytest.raises(ValueError, match="5 images but 4 labels"):
        read_mnist_idx(d / "img", d / "lbl4")
    with pytest.raises(FileNotFoundError, match="not found"):
        read_mnist_idx(d / "missing", d / "lbl")
    with pytest.raises(FileNotFoundError, match="directory"):
        read_mnist_idx(d, d / "lbl")


# ---- CIFAR-10 --------------------------------------------------------------------------------------------

def _cifar(path, n=4, protocol=2, **override):
    rng = np.random.default_rng(0)
    batch = {b"batch_label": b"testing batch 1 of 1", b"labels": [int(v) for v in rng.integers(0, 10, n)],
             b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"filenames": [f"img_{i}.png".encode() for i in range(n)]}
    batch.update(override)
    path.write_bytes(pickle.dumps(batch, protocol=protocol))
    return batch


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_read_cifar10_batch(tmp_path, protocol):
    batch = _cifar(tmp_path / "data_batch_1", protocol=protocol)
    x, y = read_cifar10_batch(tmp_path / "data_batch_1")
    assert x.shape == (4, 3, 32, 32) and x.dtype == torch.uint8 and y.dtype == torch.long
    assert y.tolist() == batch[b"labels"]
    data = batch[b"data"]
    # channel planes: the first 1024 values are red, row by row
    assert int(x[2, 0, 0, 5]) == data[2, 5] and int(x[2, 1, 0, 0]) == data[2, 1024]
    assert int(x[2, 2, 31, 31]) == data[2, 3071] and int(x[1, 0, 1, 0]) == data[1, 32]
    xf, _ = read_cifar10_batch(tmp_path / "data_batch_1", normalize=True)
    assert xf.dtype == torch.float32 and float(xf.max()) <= 1.0


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_read_cifar10_malformed_files_raise(tmp_path):
    p = tmp_path / "b"
    p.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]})[:-30])
    with pytest.raises(ValueError, match="not a valid pickle"):
        read_cifar10_batch(p)
    p.write_bytes(b"this is a text file\n")
    with pytest.raises(ValueError, match="data_batch_1"):
        read_cifar10_batch(p)
    p.write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}))
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        read_cifar10_batch(p)
    p.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(ValueError, match="not a dict"):
        read_cifar10_batch(p)
    _cifar(p, data=np.zeros((4, 784), np.uint8))
    with pytest.raises(ValueError, match=r"\(N, 3072\)"):
        read_cifar10_batch(p)
    _cifar(p, data=np.zeros((4, 3072), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        read_cifar10_batch(p)
    _cifar(p, labels=[1, 2, 3])
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        read_cifar10_batch(p)
    _cifar(p, labels=["cat"] * 4)
    with pytest.raises(ValueError, match="class numbers"):
        read_cifar10_batch(p)
    _cifar(p, labels=[0, 1, -1, 2])
    with pytest.raises(ValueError, match="negative"):
        read_cifar10_batch(p)
    p.write_bytes(gzip.compress(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [3]})))
    assert read_cifar10_batch(p)[1].tolist() == [3]  # gzip-compressed batches are read too
    p.write_bytes(pickle.dumps({b"images": np.zeros((1, 3072), np.uint8)}))
    with pytest.raises(ValueError, match="needs 'data' and 'labels'"):
        read_cifar10_batch(p)
    with pytest.raises(FileNotFoundError):
        read_cifar10_batch(tmp_path / "nope")
