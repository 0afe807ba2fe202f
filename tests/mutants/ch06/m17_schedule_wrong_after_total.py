"""Mutant m17_schedule_wrong_after_total: after total_steps the cosine keeps going (the rate climbs back up)."""
# %%
import math


def warmup_cosine_lr(step, *, max_lr, min_lr, warmup_steps, total_steps):
    if step < 0 or warmup_steps < 0 or total_steps < 0:
        raise ValueError("step, warmup_steps and total_steps must be >= 0")
    if not 0 <= min_lr <= max_lr:
        raise ValueError("need 0 <= min_lr <= max_lr")
    if step < warmup_steps:
        return max_lr * (step + 1) / (warmup_steps + 1)
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)
