"""Mutant m46_block_dropout_after_residual: pre-LN: dropout is applied to the residual sum x + sublayer(x) instead of the sub-layer's output."""
# %%
class DecoderBlock(DecoderBlock):  # the correct DecoderBlock from above, but for what follows
    def forward(self, x, memory, *, tgt_mask=None, memory_mask=None, is_causal=True):
        def sa(h):
            return self.self_attn(h, mask=tgt_mask, is_causal=is_causal)

        def ca(h):
            return self.cross_attn(h, memory, mask=memory_mask)

        if self.norm_first:
            x = self.dropout1(x + sa(self.norm1(x)))
            x = self.dropout2(x + ca(self.norm2(x)))
            x = self.dropout3(x + self.ffn(self.norm3(x)))
        else:
            x = self.norm1(x + self.dropout1(sa(x)))
            x = self.norm2(x + self.dropout2(ca(x)))
            x = self.norm3(x + self.dropout3(self.ffn(x)))
        return x
