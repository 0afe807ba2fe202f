"""Mutant m38_is_causal_false_applies_mask: is_causal is tested with 'is not None', so is_causal=False also applies the causal mask."""
# %%
_correct = scaled_dot_product_attention


def scaled_dot_product_attention(q, k, v, mask=None, *, is_causal=None, **kwargs):
    return _correct(q, k, v, mask, is_causal=is_causal is not None, **kwargs)
