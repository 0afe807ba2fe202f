"""Mutant m21_heads_split_without_transpose: MultiHeadAttention splits heads with reshape(B, nh, T, hs) and no transpose (chapter 4), mixing tokens, so the GPT sees the future."""
# %% ch04
class MultiHeadAttention(MultiHeadAttention):  # the correct MultiHeadAttention of chapter 4, but for what follows
    def _split_heads(self, t):
        B, T, _ = t.shape
        return t.reshape(B, self.n_heads, T, self.head_dim)
