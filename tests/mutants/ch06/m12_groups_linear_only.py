"""Mutant m12_groups_linear_only: groups are built from nn.Linear weights and biases only: norm parameters are left out."""
# %%
from torch import nn


def param_groups(model, weight_decay):
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    named = [(f'{mn}.{n}', p) for mn, m in model.named_modules() if isinstance(m, nn.Linear)
             for n, p in m.named_parameters()]
    decay = [p for n, p in named if p.dim() >= 2 and n not in skip]
    no_decay = [p for n, p in named if p.dim() < 2 or n in skip]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
