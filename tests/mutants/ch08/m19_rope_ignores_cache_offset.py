"""Mutant m19_rope_ignores_cache_offset: MultiHeadAttention rotates q and k from position 0 also after cached tokens (the rope offset is dropped, chapter 4)."""
# %% ch04
class MultiHeadAttention(MultiHeadAttention):  # the correct MultiHeadAttention of chapter 4, but for what follows
    def forward(self, x, context=None, *, rope=None, **kwargs):
        from_zero = None if rope is None else (lambda q, k, offset=0: rope(q, k))  # the offset is dropped
        return super().forward(x, context, rope=from_zero, **kwargs)
