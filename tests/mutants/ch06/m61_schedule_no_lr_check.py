"""Mutant m61_schedule_no_lr_check: min_lr is not checked: min_lr > max_lr or min_lr < 0 is accepted."""
# %%
import math


def warmup_cosine_lr(step, *, max_lr, min_lr, warmup_steps, total_steps):
    if step < 0 or warmup_steps < 0 or total_steps < 0:
        raise ValueError("step, warmup_steps and total_steps must be >= 0")
    if step < warmup_steps:
        return max_lr * (step + 1) / (warmup_steps + 1)
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)
