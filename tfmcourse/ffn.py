"""Position-wise feed-forward networks.

The FFN is the part of a block that transforms each token *on its own*: the same two-layer MLP is
applied at every position, ``FFN(x) = act(x W1 + b1) W2 + b2``. Nothing moves between positions here
(that is attention's job); as a convolution it would be a 1x1 one, so it is not a CNN in any useful
sense.
"""
from __future__ import annotations

from functools import partial

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FeedForward", "SwiGLU", "build_ffn"]

# "gelu_tanh" is the tanh approximation of GELU that GPT-2 was trained with (Hugging Face's "gelu_new").
_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "gelu_tanh": partial(nn.GELU, approximate="tanh")}


class FeedForward(nn.Module):
    """``fc2(dropout(act(fc1(x))))`` with ``act`` ReLU (original paper) or GELU (BERT, ViT; GPT-2 uses
    its tanh approximation, ``"gelu_tanh"``).

    Args:
        d_model: token width.
        d_ff: hidden width (4 * d_model is the usual choice).
        activation: ``"relu"``, ``"gelu"`` or ``"gelu_tanh"``.
        dropout: dropout after the activation.
        bias: biases in both linear layers.

    Shapes:
        ``(B, T, d_model)`` -> ``(B, T, d_model)``.
    """

    def __init__(self, d_model: int, d_ff: int, *, activation: str = "relu", dropout: float = 0.0,
                 bias: bool = True) -> None:
        super().__init__()
        # BEGIN SOLUTION ch05
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        self.fc1 = nn.Linear(d_model, d_ff, bias=bias)
        self.act = _ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(d_ff, d_model, bias=bias)
        # END SOLUTION

    def forward(self, x: Tensor) -> Tensor:
        # BEGIN SOLUTION ch05
        return self.fc2(self.dropout(self.act(self.fc1(x))))  # (B, T, d_ff) inside
        # END SOLUTION


class SwiGLU(nn.Module):
    """Gated FFN of Shazeer (2020): ``fc2(silu(x W_gate) * (x W_up))`` as in LLaMA.

    ``fc1`` holds ``W_gate`` and ``W_up`` stacked, so both come out of one matmul.

    Shapes:
        ``(B, T, d_model)`` -> ``(B, T, d_model)``.
    """

    def __init__(self, d_model: int, d_ff: int, *, dropout: float = 0.0, bias: bool = False) -> None:
        super().__init__()
        # BEGIN SOLUTION ch05
        self.fc1 = nn.Linear(d_model, 2 * d_ff, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(d_ff, d_model, bias=bias)
        # END SOLUTION

    def forward(self, x: Tensor) -> Tensor:
        # BEGIN SOLUTION ch05
        gate, up = self.fc1(x).chunk(2, dim=-1)  # (B, T, d_ff) each
        return self.fc2(self.dropout(F.silu(gate) * up))
        # END SOLUTION


def build_ffn(kind: str, d_model: int, d_ff: int, *, dropout: float = 0.0, bias: bool = True) -> nn.Module:
    """``"relu"``, ``"gelu"``, ``"gelu_tanh"`` (:class:`FeedForward`) or ``"swiglu"`` (:class:`SwiGLU`)."""
    if kind == "swiglu":
        return SwiGLU(d_model, d_ff, dropout=dropout, bias=bias)
    if kind in _ACTIVATIONS:
        return FeedForward(d_model, d_ff, activation=kind, dropout=dropout, bias=bias)
    raise ValueError(f"ffn must be one of {sorted(_ACTIVATIONS) + ['swiglu']}, got {kind!r}")
