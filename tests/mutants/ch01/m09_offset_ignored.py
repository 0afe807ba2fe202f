"""Mutant m09_offset_ignored: LearnedPositionalEmbedding ignores offset."""
# %%
class LearnedPositionalEmbedding(LearnedPositionalEmbedding):  # the correct LearnedPositionalEmbedding from above, but for what follows
    def forward(self, T, offset=0):
        return self.weight[:T]
