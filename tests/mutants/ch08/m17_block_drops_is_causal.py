"""Mutant m17_block_drops_is_causal: EncoderBlock never passes is_causal on to its attention (chapter 5), so the GPT sees the future."""
# %% ch05
class EncoderBlock(EncoderBlock):  # the correct EncoderBlock of chapter 5, but for what follows
    def forward(self, x, mask=None, *, is_causal=False, cache=None, rope=None):
        def self_attention(h):
            return self.dropout1(self.attn(h, mask=mask, cache=cache, rope=rope))

        if self.norm_first:
            x = x + self_attention(self.norm1(x))
            x = x + self.dropout2(self.ffn(self.norm2(x)))
        else:
            x = self.norm1(x + self_attention(x))
            x = self.norm2(x + self.dropout2(self.ffn(x)))
        return x
