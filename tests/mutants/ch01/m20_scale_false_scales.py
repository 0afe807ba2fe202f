"""Mutant m20_scale_false_scales: TokenEmbedding tests scale with 'is not None', so scale=False also multiplies by sqrt(d_model)."""
# %%
import math


class TokenEmbedding(TokenEmbedding):  # the correct TokenEmbedding from above, but for what follows
    def __init__(self, vocab_size, d_model, *, scale=None):
        super().__init__(vocab_size, d_model)
        self.scale = math.sqrt(d_model) if scale is not None else 1.0
