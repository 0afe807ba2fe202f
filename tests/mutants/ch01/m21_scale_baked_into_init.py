"""Mutant m21_scale_baked_into_init: scale=True multiplies the initial weight by sqrt(d_model) instead of the looked-up vectors in forward."""
# %%
import math

import torch


class TokenEmbedding(TokenEmbedding):  # the correct TokenEmbedding from above, but for what follows
    def __init__(self, vocab_size, d_model, *, scale=False):
        super().__init__(vocab_size, d_model)
        if scale:
            with torch.no_grad():
                self.weight.mul_(math.sqrt(d_model))
