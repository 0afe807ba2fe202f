"""Mutant m21_loop_heads_ignore_bias: the loop passes bias only to proj; its heads always have biases."""
# %%
from torch import nn


class MultiHeadAttentionLoop(MultiHeadAttentionLoop):  # the correct MultiHeadAttentionLoop from above, but for what follows
    def __init__(self, d_model, n_heads, *, bias=True):
        super().__init__(d_model, n_heads, bias=bias)
        self.heads = nn.ModuleList(AttentionHead(d_model, d_model // n_heads) for _ in range(n_heads))
