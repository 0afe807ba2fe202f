"""Mutant m08_embedding_detached: the lookup reads weight.data, so no gradient reaches the embedding."""
# %%
import torch.nn.functional as F


class TokenEmbedding(TokenEmbedding):  # the correct TokenEmbedding from above, but for what follows
    def forward(self, idx):
        x = F.embedding(idx, self.weight.data)
        return x * self.scale if self.scale != 1.0 else x
