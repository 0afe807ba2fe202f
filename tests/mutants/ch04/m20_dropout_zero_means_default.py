"""Mutant m20_dropout_zero_means_default: dropout=0.0 is treated as "not given" and replaced by 0.1."""
# %%
class MultiHeadAttention(MultiHeadAttention):  # the correct MultiHeadAttention from above, but for what follows
    def __init__(self, d_model, n_heads, *, dropout=0.0, **kwargs):
        super().__init__(d_model, n_heads, dropout=dropout or 0.1, **kwargs)
