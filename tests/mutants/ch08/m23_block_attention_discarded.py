"""Mutant m23_block_attention_discarded: EncoderBlock computes the attention sub-layer but never adds its output to x (chapter 5), so the GPT predicts each character from the one before only."""
# %% ch05
class EncoderBlock(EncoderBlock):  # the correct EncoderBlock of chapter 5, but for what follows
    def forward(self, x, mask=None, *, is_causal=False, cache=None, rope=None):
        h = self.norm1(x) if self.norm_first else x
        self.dropout1(self.attn(h, mask=mask, is_causal=is_causal, cache=cache, rope=rope))  # the result is lost
        if self.norm_first:
            return x + self.dropout2(self.ffn(self.norm2(x)))
        return self.norm2(x + self.dropout2(self.ffn(x)))
