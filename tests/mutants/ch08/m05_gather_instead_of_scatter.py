"""Mutant m05_gather_instead_of_scatter: the values are put back with gather(order), which applies the sort permutation again instead of undoing it."""
# %%
def top_p_filter(logits, top_p):
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs
    sorted_logits = sorted_logits.masked_fill(mass_before >= top_p, float("-inf"))
    return sorted_logits.gather(-1, order)
