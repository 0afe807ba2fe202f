"""Mutant m31_post_ln_dropout_after_norm: post-LN drops after the norm, norm1(x + attn(x)) then dropout, instead of before the residual add."""
# %%
class EncoderBlock(EncoderBlock):  # the correct EncoderBlock from above, but for what follows
    def forward(self, x, mask=None, *, is_causal=False, cache=None, rope=None):
        def sa(h):
            return self.attn(h, mask=mask, is_causal=is_causal, cache=cache, rope=rope)

        if self.norm_first:
            x = x + self.dropout1(sa(self.norm1(x)))
            x = x + self.dropout2(self.ffn(self.norm2(x)))
        else:
            x = self.dropout1(self.norm1(x + sa(x)))
            x = self.dropout2(self.norm2(x + self.ffn(x)))
        return x
