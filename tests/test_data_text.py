"""Chapter 6 data: the standard-library corpus, user text files, splits and LM batches."""
import sysconfig
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from tfmcourse.data import TokenWindowDataset, get_lm_batch, load_text, stdlib_corpus, stdlib_files, train_val_split
from tfmcourse.data.text import _corpus
from tfmcourse.tokenizer import CharTokenizer

pytestmark = pytest.mark.ch06


def test_corpus_is_real_text_of_the_requested_size():
    text = stdlib_corpus()
    assert 1_000_000 < len(text) <= 2_000_000
    assert text.endswith("\n") and "\x00" not in text and "\r" not in text
    assert all(c.isprintable() or c in "\n\t" for c in set(text))
    assert text.startswith("# file: ")
    assert "def " in text and "import " in text and "return" in text  # Python source, with its docstrings
    # every file comes from the standard library and really holds that text
    root = Path(sysconfig.get_paths()["stdlib"])
    names = [line[len("# file: "):] for line in text.splitlines() if line.startswith("# file: ")]
    assert len(names) > 10 and all((root / n).is_file() for n in names)
    first = (root / names[1]).read_text(encoding="utf-8").rstrip()
    assert first in text
    assert not any(part in ("test", "tests", "site-packages") for n in names for part in Path(n).parts)


def test_corpus_is_deterministic_and_cached():
    _corpus.cache_clear()
    a = stdlib_corpus(300_000)
    assert stdlib_corpus(300_000) is a  # cached
    _corpus.cache_clear()
    assert stdlib_corpus(300_000) == a  # rebuilt identically
    small = stdlib_corpus(10_000)
    assert len(small) <= 10_000 and a.startswith(small) and small.endswith("\n")  # whole lines, a prefix
    assert stdlib_files() == sorted(stdlib_files(), key=lambda p: (len(p.parts), str(p)))
    with pytest.raises(ValueError, match="positive"):
        stdlib_corpus(0)


def test_load_text(tmp_path):
    f = tmp_path / "t.txt"
    f.write_bytes("\ufeffhello\r\nwörld\n".encode("utf-8"))
    assert load_text(f) == "hello\nwörld\n"
    assert load_text(str(f)) == "hello\nwörld\n"


@pytest.mark.parametrize("content, error, match", [
    (None, FileNotFoundError, "does not exist"),
    ("dir", ValueError, "is a directory"),
    (b"", ValueError, "empty"),
    (b"  \n\n", ValueError, "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ValueError, "binary"),
    ("caf\xe9 latin-1".encode("latin-1"), ValueError, "not valid UTF-8"),
])
def test_load_text_errors_say_what_to_do(tmp_path, content, error, match):
    p = tmp_path / "x.txt"
    if content == "dir":
        p.mkdir()
    elif content is not None:
        p.write_bytes(content)
    with pytest.raises(error, match=match):
        load_text(p)


def test_train_val_split_is_contiguous_and_deterministic():
    ids = torch.arange(1000)
    train, val = train_val_split(ids, 0.1)
    assert torch.equal(train, torch.arange(900)) and torch.equal(val, torch.arange(900, 1000))
    train, val = train_val_split(torch.arange(5), 0.01)
    assert len(val) == 1 and len(train) == 4  # a nonzero fraction keeps at least one token
    train, val = train_val_split(torch.arange(5), 0.0)
    assert len(val) == 0
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="val_fraction"):
            train_val_split(ids, bad)
    with pytest.raises(ValueError, match="1-D"):
        train_val_split(ids.view(10, 100))
    with pytest.raises(ValueError, match="too few"):
        train_val_split(torch.arange(1), 0.5)


def test_lm_batch_y_is_x_shifted_by_one():
    data = torch.arange(100, 600, dtype=torch.int32)  # value - 100 = position: easy to check windows
    g = torch.Generator().manual_seed(0)
    x, y = get_lm_batch(data, 16, 32, generator=g)
    assert x.shape == y.shape == (32, 16) and x.dtype == y.dtype == torch.long
    assert torch.equal(y[:, :-1], x[:, 1:])
    assert torch.equal(x[:, 1:] - x[:, :-1], torch.ones(32, 15, dtype=torch.long))  # contiguous windows
    assert torch.equal(y, x + 1)
    assert x.min() >= 100 and y.max() <= 599
    x2, _ = get_lm_batch(data, 16, 32, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)
    x, y = get_lm_batch(data, 16, 4, device="cpu")
    assert x.device.type == "cpu"


def test_lm_batch_reaches_both_ends_and_checks_sizes():
    data = torch.arange(10)
    x, y = get_lm_batch(data, 9, 50, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x[0], torch.arange(9)) and torch.equal(y[0], torch.arange(1, 10))  # only one window fits
    x, _ = get_lm_batch(data, 3, 500, generator=torch.Generator().manual_seed(0))
    assert set(x[:, 0].tolist()) == set(range(7))  # every start 0..N-T-1 is drawn
    with pytest.raises(ValueError, match="too short"):
        get_lm_batch(data, 10, 1)


def test_token_window_dataset():
    data = torch.arange(23)
    ds = TokenWindowDataset(data, 5)
    assert len(ds) == 4  # starts 0, 5, 10, 15 (the window at 15 needs tokens up to 20)
    x, y = ds[1]
    assert torch.equal(x, torch.arange(5, 10)) and torch.equal(y, torch.arange(6, 11))
    assert torch.equal(ds[-1][0], torch.arange(15, 20))
    with pytest.raises(IndexError):
        ds[4]
    strided = TokenWindowDataset(data, 5, stride=1)
    assert len(strided) == 18 and torch.equal(strided[17][1], torch.arange(18, 23))
    assert len(TokenWindowDataset(torch.arange(6), 5)) == 1
    with pytest.raises(ValueError, match="too short"):
        TokenWindowDataset(torch.arange(5), 5)
    # works with a DataLoader and a DistributedSampler (two ranks share the windows exactly)
    xb, yb = next(iter(DataLoader(ds, batch_size=4)))
    assert xb.shape == yb.shape == (4, 5) and torch.equal(yb[:, :-1], xb[:, 1:])
    seen = [i for r in range(2) for i in DistributedSampler(ds, num_replicas=2, rank=r, shuffle=True, seed=0)]
    assert sorted(seen) == list(range(len(ds)))


def test_end_to_end_char_lm_data():
    text = stdlib_corpus(100_000)
    tok = CharTokenizer.from_text(text)
    ids = torch.tensor(tok.encode(text), dtype=torch.long)
    train, val = train_val_split(ids, 0.1)
    x, y = get_lm_batch(val, 64, 8, generator=torch.Generator().manual_seed(0))
    row = tok.decode(x[0]) + tok.decode(y[0, -1:])
    assert tok.decode(y[0]) == row[1:] and row in text
