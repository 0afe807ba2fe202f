"""Shared test set-up: deterministic seeds, and `gpu` tests skip without CUDA."""
from __future__ import annotations

import pytest
import torch

# Tiny models on a shared 2-core machine: one intra-op thread per test process avoids oversubscription
# (two pytest-xdist workers x two threads ran ~100x slower than one thread each).
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run `pytest -m gpu` on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
