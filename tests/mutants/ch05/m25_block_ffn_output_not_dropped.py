"""Mutant m25_block_ffn_output_not_dropped: dropout2 is never applied to the FFN sub-layer's output."""
# %%
class EncoderBlock(EncoderBlock):  # the correct EncoderBlock from above, but for what follows
    def forward(self, x, mask=None, *, is_causal=False, cache=None, rope=None):
        def sa(h):
            return self.dropout1(self.attn(h, mask=mask, is_causal=is_causal, cache=cache, rope=rope))

        if self.norm_first:
            x = x + sa(self.norm1(x))
            x = x + self.ffn(self.norm2(x))
        else:
            x = self.norm1(x + sa(x))
            x = self.norm2(x + self.ffn(x))
        return x
