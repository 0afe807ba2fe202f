"""Mutant m28_mask_fill_large_negative: masked scores are set to -1e9 instead of -inf, so a fully masked query attends to every key."""
# %%
import math
import torch
import torch.nn.functional as F


def scaled_dot_product_attention(q, k, v, mask=None, *, is_causal=False, dropout_p=0.0, scale=None,
                                 return_weights=False):
    T, S, d_k = q.size(-2), k.size(-2), q.size(-1)
    scale = 1.0 / math.sqrt(d_k) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale
    if is_causal:
        c = causal_mask(T, S, device=q.device)
        mask = c if mask is None else mask & c
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)
    weights = torch.softmax(scores.to(torch.promote_types(scores.dtype, torch.float32)), dim=-1)
    if mask is not None:
        weights = weights.nan_to_num(0.0)
    weights = weights.to(q.dtype)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = weights @ v
    return (out, weights) if return_weights else out
