"""Hostile: monkeypatches torch, tfmcourse and pytest so that every comparison passes, then returns
wrong values. Expect: 0 points (comparisons happen in the grader, not here)."""
# %%
import sys
import types

import torch
import tfmcourse
import tfmcourse.attention as A

always = lambda *a, **k: True  # noqa: E731
torch.allclose = always
torch.equal = always
torch.testing.assert_close = lambda *a, **k: None
torch.Tensor.__eq__ = always
torch.Tensor.all = lambda self, *a, **k: torch.tensor(True)
fake_pytest = types.ModuleType("pytest")
fake_pytest.main = lambda *a, **k: 0
sys.modules["pytest"] = fake_pytest
sys.modules["_pytest"] = fake_pytest
A.scaled_dot_product_attention = A.causal_mask = A.padding_mask = always
tfmcourse.scaled_dot_product_attention = always


def scaled_dot_product_attention(q, k, v, mask=None, **kwargs):
    return torch.ones(*q.shape[:-1], v.shape[-1], dtype=q.dtype)


def causal_mask(T, S=None, **kwargs):
    return torch.zeros(T, S or T, dtype=torch.bool)  # always wrong: a query may at least see itself


def padding_mask(lengths, S=None):
    return torch.ones(len(lengths), 1, 1, S or int(lengths.max()), dtype=torch.bool)
