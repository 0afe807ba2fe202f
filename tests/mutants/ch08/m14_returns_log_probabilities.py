"""Mutant m14_returns_log_probabilities: the kept entries are log-probabilities (log_softmax of the logits), not the logits themselves."""
# %%
import torch


def top_p_filter(logits, top_p):
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    logp = logits.log_softmax(dim=-1)
    sorted_logp, order = logp.sort(dim=-1, descending=True)
    probs = sorted_logp.exp()
    mass_before = probs.cumsum(dim=-1) - probs
    sorted_logp = sorted_logp.masked_fill(mass_before >= top_p, float("-inf"))
    return torch.full_like(logp, float("-inf")).scatter(-1, order, sorted_logp)
