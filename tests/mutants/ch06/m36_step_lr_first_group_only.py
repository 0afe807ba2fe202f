"""Mutant m36_step_lr_first_group_only: the learning rate is set on the first parameter group only."""
# %%
import torch
import torch.nn.functional as F


def train_step(model, optimizer, micro_batches, *, step, lr_schedule, grad_clip=None, scaler=None, amp_dtype=None):
    model.train()
    if scaler is None:
        scaler = torch.amp.GradScaler(enabled=False)
    counts = [(batch[-1] != -100).sum() for batch in micro_batches]
    n_targets = torch.stack(counts).sum()
    losses = []
    for batch, n in zip(micro_batches, counts):
        *inputs, targets = batch
        with torch.autocast(targets.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(*inputs)[0]
        loss = F.cross_entropy(logits.flatten(0, -2).float(), targets.flatten(), ignore_index=-100)
        loss = loss * (n / n_targets)
        scaler.scale(loss).backward()
        losses.append(loss.detach())
    grad_norm = None
    if grad_clip is not None:
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    lr = lr_schedule(step)
    optimizer.param_groups[0]["lr"] = lr
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return {"loss": torch.stack(losses).sum(), "n_targets": n_targets, "grad_norm": grad_norm, "lr": lr}
