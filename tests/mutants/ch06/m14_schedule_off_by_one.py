"""Mutant m14_schedule_off_by_one: warmup uses step / warmup_steps (starts at 0, off by one)."""
# %%
import math


def warmup_cosine_lr(step, *, max_lr, min_lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return max_lr * step / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)
