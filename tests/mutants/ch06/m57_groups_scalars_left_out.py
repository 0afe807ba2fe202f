"""Mutant m57_groups_scalars_left_out: the no-decay group takes only 1-D parameters: a 0-D scalar parameter is in no group."""
# %%
def param_groups(model, weight_decay):
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in named if p.dim() >= 2 and n not in skip]
    no_decay = [p for n, p in named if p.dim() == 1 or n in skip]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
