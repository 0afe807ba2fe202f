"""Mutant m26_token_embedding_ignores_leading_dims: TokenEmbedding flattens ids assuming (B, T) and returns (B, T, d) only for 2-D ids."""
# %%
import torch.nn.functional as F


class TokenEmbedding(TokenEmbedding):  # the correct TokenEmbedding from above, but for what follows
    def forward(self, idx):
        B, T = idx.shape
        x = F.embedding(idx.reshape(B * T), self.weight).view(B, T, -1)
        return x * self.scale if self.scale != 1.0 else x
