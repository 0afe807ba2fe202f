"""Mutant m09_groups_decay_everything: param_groups decays biases and norm parameters too (one group)."""
# %%
def param_groups(model, weight_decay):
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in named]
    no_decay = []
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
