"""Mutant m20_block_drops_cache: EncoderBlock does not pass cache on to its attention (chapter 5), so nothing is ever cached."""
# %% ch05
class EncoderBlock(EncoderBlock):  # the correct EncoderBlock of chapter 5, but for what follows
    def forward(self, x, mask=None, *, is_causal=False, cache=None, rope=None):
        return super().forward(x, mask, is_causal=is_causal, rope=rope)
