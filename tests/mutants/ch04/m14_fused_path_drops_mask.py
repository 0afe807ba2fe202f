"""Mutant m14_fused_path_drops_mask: the fused path forgets the mask (the manual path keeps it)."""
# %%
class MultiHeadAttention(MultiHeadAttention):  # the correct MultiHeadAttention from above, but for what follows
    def forward(self, x, context=None, *, mask=None, need_weights=False, **kwargs):
        manual = need_weights or self.keep_weights or not self.fused
        return super().forward(x, context, mask=mask if manual else None, need_weights=need_weights, **kwargs)
