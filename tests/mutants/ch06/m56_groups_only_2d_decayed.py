"""Mutant m56_groups_only_2d_decayed: only exactly 2-D parameters are decayed (a 4-D convolution kernel is not)."""
# %%
def param_groups(model, weight_decay):
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in named if p.dim() == 2 and n not in skip]
    no_decay = [p for n, p in named if p.dim() != 2 or n in skip]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
