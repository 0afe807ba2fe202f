"""Mutant m18_token_embedding_unit_init: TokenEmbedding's weight is initialised from N(0, 1) (nn.Embedding's default) instead of std 0.02."""
# %%
from torch import nn


class TokenEmbedding(TokenEmbedding):  # the correct TokenEmbedding from above, but for what follows
    def __init__(self, vocab_size, d_model, *, scale=False):
        super().__init__(vocab_size, d_model, scale=scale)
        nn.init.normal_(self.weight)
