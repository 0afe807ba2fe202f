"""Mutant m11_head_ignores_mask: AttentionHead drops the mask (padding is attended in the loop)."""
# %%
from tfmcourse.attention import attention, scaled_dot_product_attention


class AttentionHead(AttentionHead):  # the correct AttentionHead from above, but for what follows
    def forward(self, x, context=None, mask=None, is_causal=False):
        context = x if context is None else context
        q = self.q(x)[:, None]
        k, v = self.k(context)[:, None], self.v(context)[:, None]
        return scaled_dot_product_attention(q, k, v, None, is_causal=is_causal)[:, 0]
