"""Mutant m13_ties_at_the_cut_kept: keeps every token whose logit is at least the last nucleus token's, so tokens tied with it are all kept."""
# %%
def top_p_filter(logits, top_p):
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    sorted_logits, _ = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(dim=-1)
    n_keep = (probs.cumsum(dim=-1) - probs < top_p).sum(dim=-1, keepdim=True)  # the nucleus's size
    cut = sorted_logits.gather(-1, n_keep - 1)  # the logit of its last token
    return logits.masked_fill(logits < cut, float("-inf"))
