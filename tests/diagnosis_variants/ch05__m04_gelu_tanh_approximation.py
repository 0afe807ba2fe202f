"""A student's own FeedForward (a dict of activation functions, no nn.Dropout module reused) whose "gelu"
is GELU's tanh approximation (GPT-2's) instead of the exact GELU. Expected diagnosis:
m04_gelu_tanh_approximation."""
# %%
import torch
from torch import nn
from torch.nn import functional as F

ACTS = {"relu": F.relu, "gelu": lambda h: F.gelu(h, approximate="tanh"),  # the mistake: exact GELU wanted
        "gelu_tanh": lambda h: F.gelu(h, approximate="tanh")}


class FeedForward(nn.Module):
    def __init__(self, d_model, d_ff, *, activation="relu", dropout=0.0, bias=True):
        super().__init__()
        if activation not in ACTS:
            raise ValueError(f"unknown activation {activation!r}; use one of {sorted(ACTS)}")
        self.fc1 = nn.Linear(d_model, d_ff, bias=bias)
        self.fc2 = nn.Linear(d_ff, d_model, bias=bias)
        self.activation, self.p = activation, dropout

    def forward(self, x):
        h = ACTS[self.activation](self.fc1(x))
        h = F.dropout(h, p=self.p, training=self.training)
        return self.fc2(h)
