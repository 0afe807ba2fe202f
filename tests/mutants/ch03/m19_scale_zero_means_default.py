"""Mutant m19_scale_zero_means_default: scale=0.0 is treated as 'not given' (scale = scale or 1/sqrt(d_k))."""
# %%
_correct = scaled_dot_product_attention


def scaled_dot_product_attention(q, k, v, mask=None, *, scale=None, **kwargs):
    return _correct(q, k, v, mask, scale=scale or None, **kwargs)
