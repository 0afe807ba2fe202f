"""Mutant m16_positions_restart_after_cache: LearnedPositionalEmbedding ignores offset (chapter 1), so the tokens after the cached ones get positions 0, 1, ... again."""
# %% ch01
class LearnedPositionalEmbedding(LearnedPositionalEmbedding):  # the correct one of chapter 1, but for what follows
    def forward(self, T, offset=0):
        return self.weight[:T]
