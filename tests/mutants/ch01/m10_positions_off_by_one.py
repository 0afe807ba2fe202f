"""Mutant m10_positions_off_by_one: learned positions are read one row too late."""
# %%
class LearnedPositionalEmbedding(LearnedPositionalEmbedding):  # the correct LearnedPositionalEmbedding from above, but for what follows
    def forward(self, T, offset=0):
        return self.weight[offset + 1 : offset + T + 1]
