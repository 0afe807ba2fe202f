"""Mutant m01_nucleus_one_token_short: a token is kept only while the running total including it stays within top_p, so the token that reaches top_p is dropped."""
# %%
import torch


def top_p_filter(logits, top_p):
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    sorted_logits = sorted_logits.masked_fill(cum > top_p, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
