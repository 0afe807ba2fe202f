"""Mutant m29_block_rope_not_passed: the block does not pass rope on to attention."""
# %%
class EncoderBlock(EncoderBlock):  # the correct EncoderBlock from above, but for what follows
    def forward(self, x, mask=None, *, is_causal=False, cache=None, rope=None):
        def sa(h):
            return self.dropout1(self.attn(h, mask=mask, is_causal=is_causal, cache=cache))

        if self.norm_first:
            x = x + sa(self.norm1(x))
            x = x + self.dropout2(self.ffn(self.norm2(x)))
        else:
            x = self.norm1(x + sa(x))
            x = self.norm2(x + self.dropout2(self.ffn(x)))
        return x
