"""Mutant m55_groups_no_weight_decay_ignored: the names from model.no_weight_decay() are decayed like any matrix."""
# %%
def param_groups(model, weight_decay):
    skip = set()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in named if p.dim() >= 2 and n not in skip]
    no_decay = [p for n, p in named if p.dim() < 2 or n in skip]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
