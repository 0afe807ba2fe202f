"""Mutant m12_weights_averaged_over_heads: need_weights returns weights averaged over the heads (B, T, S)."""
# %%
class MultiHeadAttention(MultiHeadAttention):  # the correct MultiHeadAttention from above, but for what follows
    def forward(self, x, context=None, *, need_weights=False, **kwargs):
        out = super().forward(x, context, need_weights=need_weights, **kwargs)
        return (out[0], out[1].mean(1)) if need_weights else out
