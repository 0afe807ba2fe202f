"""Mutant m15_loop_heads_share_weights: every head of the loop is the same AttentionHead (one set of weights)."""
# %%
from torch import nn


class MultiHeadAttentionLoop(MultiHeadAttentionLoop):  # the correct MultiHeadAttentionLoop from above, but for what follows
    def __init__(self, d_model, n_heads, *, bias=True):
        super().__init__(d_model, n_heads, bias=bias)
        head = AttentionHead(d_model, d_model // n_heads, bias=bias)
        self.heads = nn.ModuleList([head] * n_heads)  # n_heads references to one module
