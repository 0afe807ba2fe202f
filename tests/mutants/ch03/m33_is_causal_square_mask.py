"""Mutant m33_is_causal_square_mask: is_causal uses causal_mask(T), a square mask, so it fails when there are more keys than queries."""
# %%
import math
import torch
import torch.nn.functional as F


def scaled_dot_product_attention(q, k, v, mask=None, *, is_causal=False, dropout_p=0.0, scale=None,
                                 return_weights=False):
    T, d_k = q.size(-2), q.size(-1)
    scale = 1.0 / math.sqrt(d_k) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale
    if is_causal:
        c = causal_mask(T, device=q.device)
        mask = c if mask is None else mask & c
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores.to(torch.promote_types(scores.dtype, torch.float32)), dim=-1)
    if mask is not None:
        weights = weights.nan_to_num(0.0)
    weights = weights.to(q.dtype)
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    out = weights @ v
    return (out, weights) if return_weights else out
