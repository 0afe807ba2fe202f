"""Mutant m04_loop_concat_reversed: the loop concatenates the heads in reverse order."""
# %%
import torch


class MultiHeadAttentionLoop(MultiHeadAttentionLoop):  # the correct MultiHeadAttentionLoop from above, but for what follows
    def forward(self, x, context=None, *, mask=None, is_causal=False):
        heads = [head(x, context, mask, is_causal) for head in self.heads]
        return self.proj(torch.cat(heads[::-1], dim=-1))
