"""Mutant m11_dropout_in_eval: dropout is applied with F.dropout's default training=True, also in eval mode."""
# %%
import torch.nn.functional as F


class FeedForward(FeedForward):  # the correct FeedForward from above, but for what follows
    def forward(self, x):
        return self.fc2(F.dropout(self.act(self.fc1(x)), self.dropout.p))


class EncoderBlock(EncoderBlock):  # the correct EncoderBlock from above, but for what follows
    def forward(self, x, mask=None, *, is_causal=False, cache=None, rope=None):
        def sa(h):
            return F.dropout(self.attn(h, mask=mask, is_causal=is_causal, cache=cache, rope=rope), self.dropout1.p)

        if self.norm_first:
            x = x + sa(self.norm1(x))
            x = x + F.dropout(self.ffn(self.norm2(x)), self.dropout2.p)
        else:
            x = self.norm1(x + sa(x))
            x = self.norm2(x + self.dropout2(self.ffn(x)))
        return x
