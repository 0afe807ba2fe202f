"""Mutant m11_groups_norms_decayed: only biases are spared from decay: norm gains (named weight) are decayed."""
# %%
def param_groups(model, weight_decay):
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in named if n.endswith('weight') and n not in skip]
    no_decay = [p for n, p in named if not n.endswith('weight') or n in skip]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
