"""Shared test set-up: one thread, deterministic seeds, figures closed, and `gpu` tests skip without CUDA."""
from __future__ import annotations

import sys

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


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    if "matplotlib.pyplot" in sys.modules:  # the viz tests draw many figures: free each test's
        sys.modules["matplotlib.pyplot"].close("all")
