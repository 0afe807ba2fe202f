"""Mutant m06_dropped_set_to_zero: dropped tokens get logit 0 instead of -inf, so they keep a probability."""
# %%
import torch


def top_p_filter(logits, top_p):
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs
    sorted_logits = sorted_logits.masked_fill(mass_before >= top_p, 0.0)
    return torch.zeros_like(logits).scatter(-1, order, sorted_logits)
