"""Mutant m27_rope_queries_only: RoPE rotates the queries but not the keys."""
# %%
class MultiHeadAttention(MultiHeadAttention):  # the correct MultiHeadAttention from above, but for what follows
    def forward(self, x, context=None, *, rope=None, **kwargs):
        queries_only = None if rope is None else (lambda q, k, offset=0: (rope(q, k, offset=offset)[0], k))
        return super().forward(x, context, rope=queries_only, **kwargs)
