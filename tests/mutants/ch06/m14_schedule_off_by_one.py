"""Mutant m14_schedule_off_by_one: warmup uses step / warmup_steps (starts at 0, off by one)."""
# %%
import math


def warmup_cosine_lr(step, *, max_lr, min_lr, warmup_steps, total_steps):
    if step < 0 or warmup_steps < 0 or total_steps < 0:
        raise ValueError("step, warmup_steps and total_steps must be >= 0")
    if not 0 <= min_lr <= max_lr:
        raise ValueError("need 0 <= min_lr <= max_lr")
    if step < warmup_steps:
        return max_lr * step / warmup_steps
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)
