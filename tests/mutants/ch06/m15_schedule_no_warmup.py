"""Mutant m15_schedule_no_warmup: no warmup: the cosine starts at step 0."""
# %%
import math


def warmup_cosine_lr(step, *, max_lr, min_lr, warmup_steps, total_steps):
    if step >= total_steps:
        return min_lr
    progress = step / total_steps
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)
