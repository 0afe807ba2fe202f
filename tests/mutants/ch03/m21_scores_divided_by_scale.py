"""Mutant m21_scores_divided_by_scale: the scores are divided by an explicit scale= instead of multiplied by it."""
# %%
_correct = scaled_dot_product_attention


def scaled_dot_product_attention(q, k, v, mask=None, *, scale=None, **kwargs):
    return _correct(q, k, v, mask, scale=None if scale is None else 1.0 / scale, **kwargs)
