"""Mutant m19_groups_tied_twice: collects parameters module by module, so a tied matrix is listed twice."""
# %%
def param_groups(model, weight_decay):
    decay, no_decay = [], []
    for module in model.modules():  # module by module: a tied matrix is met once per module that holds it
        for p in module.parameters(recurse=False):
            if p.requires_grad:
                (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]
