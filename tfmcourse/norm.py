"""Normalization layers written from their formulas.

LayerNorm normalises each token over its features (the last dimension), so it does not care how
many tokens or sequences are in the batch; BatchNorm would average over the batch and over positions
of different sequences, mixing padding into the statistics. RMSNorm drops the mean subtraction and
the bias: ``x / rms(x) * g`` (Zhang & Sennrich 2019), used by LLaMA-style models.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["LayerNorm", "RMSNorm", "build_norm", "PREFER_FUSED"]

# build_norm's default: PyTorch's fused kernels. tfmcourse.student.install sets it to False so that
# models are built from a student's own LayerNorm / RMSNorm.
PREFER_FUSED = True


class LayerNorm(nn.Module):
    """``y = (x - mean) / sqrt(var + eps) * weight + bias`` over the last dimension.

    Args:
        d_model: size of the normalised (last) dimension.
        eps: added to the variance for stability.
        bias: learn a shift ``bias`` (GPT-2 style) or not.

    Shapes:
        ``(..., d_model)`` -> same.
    """

    def __init__(self, d_model: int, eps: float = 1e-5, *, bias: bool = True) -> None:
        super().__init__()
        # BEGIN SOLUTION ch02
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model)) if bias else None
        # END SOLUTION

    def forward(self, x: Tensor) -> Tensor:
        # BEGIN SOLUTION ch02
        xf = x.to(torch.promote_types(x.dtype, torch.float32))  # stats in >= float32, also under autocast
        mean = xf.mean(dim=-1, keepdim=True)
        var = xf.var(dim=-1, keepdim=True, unbiased=False)  # biased, as in the paper and nn.LayerNorm
        y = (xf - mean) * torch.rsqrt(var + self.eps) * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y.to(x.dtype)
        # END SOLUTION


class RMSNorm(nn.Module):
    """``y = x / sqrt(mean(x^2) + eps) * weight`` over the last dimension.

    Shapes:
        ``(..., d_model)`` -> same.
    """

    def __init__(self, d_model: int, eps: float = 1e-6) -> None:
        super().__init__()
        # BEGIN SOLUTION ch02
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        # END SOLUTION

    def forward(self, x: Tensor) -> Tensor:
        # BEGIN SOLUTION ch02
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        y = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight
        return y.to(x.dtype)
        # END SOLUTION


def build_norm(kind: str, d_model: int, *, eps: float = 1e-5, bias: bool = True, fused: bool | None = None) -> nn.Module:
    """``"layernorm"`` or ``"rmsnorm"``.

    ``fused=True`` returns PyTorch's kernels (``nn.LayerNorm``, ``nn.RMSNorm``), which compute the same
    thing as the classes above (tested) at a fraction of the memory traffic; ``fused=False`` returns the
    written-out classes used for teaching; ``None`` follows :data:`PREFER_FUSED`.
    """
    fused = PREFER_FUSED if fused is None else fused
    if kind == "layernorm":
        return nn.LayerNorm(d_model, eps=eps, bias=bias) if fused else LayerNorm(d_model, eps, bias=bias)
    if kind == "rmsnorm":
        return nn.RMSNorm(d_model, eps=eps) if fused else RMSNorm(d_model, eps)
    raise ValueError(f"norm must be 'layernorm' or 'rmsnorm', got {kind!r}")
