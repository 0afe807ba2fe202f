"""Mutant m07_causal_dropped_with_cache: is_causal is dropped whenever a cache is passed (the prompt sees the future)."""
# %%
class MultiHeadAttention(MultiHeadAttention):  # the correct MultiHeadAttention from above, but for what follows
    def forward(self, x, context=None, *, is_causal=False, cache=None, **kwargs):
        return super().forward(x, context, is_causal=is_causal and cache is None, cache=cache, **kwargs)
