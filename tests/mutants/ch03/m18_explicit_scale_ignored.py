"""Mutant m18_explicit_scale_ignored: an explicit scale= is ignored: scores are always divided by sqrt(d_k)."""
# %%
_correct = scaled_dot_product_attention


def scaled_dot_product_attention(q, k, v, mask=None, *, scale=None, **kwargs):
    return _correct(q, k, v, mask, **kwargs)  # scale is never passed on
