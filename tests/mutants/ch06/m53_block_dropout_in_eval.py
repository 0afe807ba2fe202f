"""Mutant m53_block_dropout_in_eval: the sub-layer dropout is F.dropout without training=self.training: it stays on in eval mode."""
# %%
import torch.nn.functional as F


class DecoderBlock(DecoderBlock):  # the correct DecoderBlock from above, but for what follows
    def forward(self, x, memory, *, tgt_mask=None, memory_mask=None, is_causal=True):
        p = self.dropout1.p

        def sa(h):
            return F.dropout(self.self_attn(h, mask=tgt_mask, is_causal=is_causal), p)

        def ca(h):
            return F.dropout(self.cross_attn(h, memory, mask=memory_mask), p)

        if self.norm_first:
            x = x + sa(self.norm1(x))
            x = x + ca(self.norm2(x))
            x = x + F.dropout(self.ffn(self.norm3(x)), p)
        else:
            x = self.norm1(x + sa(x))
            x = self.norm2(x + ca(x))
            x = self.norm3(x + F.dropout(self.ffn(x), p))
        return x
