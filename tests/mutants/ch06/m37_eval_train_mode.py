"""Mutant m37_eval_train_mode: evaluate forgets model.eval(): dropout stays on while evaluating."""
# %%
import torch
import torch.nn.functional as F


def evaluate(model, batches, *, amp_dtype=None):
    was_training = model.training
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            *inputs, targets = batch
            with torch.autocast(targets.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(*inputs)[0]
            total += float(F.cross_entropy(logits.flatten(0, -2).float(), targets.flatten(), ignore_index=-100,
                                           reduction="sum"))
            count += int((targets != -100).sum())
    model.train(was_training)
    return {"loss": total / count if count else float("nan"), "n_targets": count}
