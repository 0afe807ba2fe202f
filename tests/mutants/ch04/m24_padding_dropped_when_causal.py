"""Mutant m24_padding_dropped_when_causal: with is_causal=True the mask argument is ignored (padding is attended)."""
# %%
class MultiHeadAttention(MultiHeadAttention):  # the correct MultiHeadAttention from above, but for what follows
    def forward(self, x, context=None, *, mask=None, is_causal=False, **kwargs):
        return super().forward(x, context, mask=None if is_causal else mask, is_causal=is_causal, **kwargs)
