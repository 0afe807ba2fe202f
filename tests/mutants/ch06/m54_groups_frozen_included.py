"""Mutant m54_groups_frozen_included: frozen parameters (requires_grad=False) are put in the groups."""
# %%
def param_groups(model, weight_decay):
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    named = list(model.named_parameters())
    decay = [p for n, p in named if p.dim() >= 2 and n not in skip]
    no_decay = [p for n, p in named if p.dim() < 2 or n in skip]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
