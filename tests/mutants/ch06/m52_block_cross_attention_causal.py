"""Mutant m52_block_cross_attention_causal: the cross-attention is causal too (is_causal passed to cross_attn)."""
# %%
class DecoderBlock(DecoderBlock):  # the correct DecoderBlock from above, but for what follows
    def forward(self, x, memory, *, tgt_mask=None, memory_mask=None, is_causal=True):
        def sa(h):
            return self.dropout1(self.self_attn(h, mask=tgt_mask, is_causal=is_causal))

        def ca(h):
            return self.dropout2(self.cross_attn(h, memory, mask=memory_mask, is_causal=is_causal))

        if self.norm_first:
            x = x + sa(self.norm1(x))
            x = x + ca(self.norm2(x))
            x = x + self.dropout3(self.ffn(self.norm3(x)))
        else:
            x = self.norm1(x + sa(x))
            x = self.norm2(x + ca(x))
            x = self.norm3(x + self.dropout3(self.ffn(x)))
        return x
