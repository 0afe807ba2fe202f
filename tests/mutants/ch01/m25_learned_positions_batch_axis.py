"""Mutant m25_learned_positions_batch_axis: LearnedPositionalEmbedding returns (1, T, d) with a batch axis instead of (T, d)."""
# %%
class LearnedPositionalEmbedding(LearnedPositionalEmbedding):  # the correct one from above, but for what follows
    def forward(self, T, offset=0):
        return self.weight[offset : offset + T][None]
