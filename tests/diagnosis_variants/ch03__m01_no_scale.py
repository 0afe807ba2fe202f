"""A student's own attention written with einsum, complete except that the scores are never scaled.
Expected diagnosis: m01_no_scale."""
# %%
import torch


def scaled_dot_product_attention(q, k, v, mask=None, *, is_causal=False, dropout_p=0.0, scale=None,
                                 return_weights=False):
    if q.size(-1) != k.size(-1) or k.size(-2) != v.size(-2):
        raise ValueError("q/k widths or k/v lengths differ")
    scores = torch.einsum("...td,...sd->...ts", q, k)
    if scale is not None:  # the mistake: no 1/sqrt(d_k) when scale is not given
        scores = scores * scale
    T, S = q.size(-2), k.size(-2)
    if is_causal:
        allowed = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(diagonal=S - T)
        mask = allowed if mask is None else mask & allowed
    work = scores.to(torch.promote_types(scores.dtype, torch.float32))
    if mask is not None:
        work = work.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(work, dim=-1)
    if mask is not None:
        weights = torch.where(mask.any(dim=-1, keepdim=True), weights, torch.zeros_like(weights))
    weights = weights.to(q.dtype)
    if dropout_p > 0.0:
        weights = torch.nn.functional.dropout(weights, p=dropout_p)
    out = torch.einsum("...ts,...sd->...td", weights, v)
    return (out, weights) if return_weights else out
