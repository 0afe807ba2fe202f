"""Optimizer set-up shared by every model: AdamW with weight decay on matrices only.

Weight decay pulls weights towards zero. That regularises the matrices of linear layers and
embeddings, but on biases and norm gains (1-D tensors) it only fights the scale the model needs,
so those go in a group with ``weight_decay=0`` (as in GPT-2, nanoGPT and timm).
"""
from __future__ import annotations

import inspect

import torch
from torch import nn

__all__ = ["param_groups", "make_optimizer"]


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split trainable parameters into decayed (``ndim >= 2``) and non-decayed (``ndim < 2``) groups.

    Tied parameters appear once (``named_parameters`` de-duplicates them). A model may name further
    parameters to spare in a ``no_weight_decay()`` method (timm's convention, e.g. ViT's position table).
    """
    # BEGIN SOLUTION ch06
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in named if p.dim() >= 2 and n not in skip]
    no_decay = [p for n, p in named if p.dim() < 2 or n in skip]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
    # END SOLUTION


def make_optimizer(model: nn.Module, *, lr: float, weight_decay: float = 0.1,
                   betas: tuple[float, float] = (0.9, 0.95), eps: float = 1e-8) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`; the fused CUDA kernel is used when every parameter is on CUDA."""
    groups = param_groups(model, weight_decay)
    on_cuda = all(p.is_cuda for g in groups for p in g["params"])
    extra = {"fused": True} if on_cuda and "fused" in inspect.signature(torch.optim.AdamW).parameters else {}
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, **extra)
