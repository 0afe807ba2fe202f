"""Mutant m25_keep_weights_not_stored: keep_weights=True is ignored: last_weights is never stored."""
# %%
class MultiHeadAttention(MultiHeadAttention):  # the correct MultiHeadAttention from above, but for what follows
    def forward(self, *args, **kwargs):
        out = super().forward(*args, **kwargs)
        self.last_weights = None
        return out
