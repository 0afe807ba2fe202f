"""Mutant m13_dropout_never_applied: the block ignores dropout (no dropout in training either)."""
# %%
class EncoderBlock(EncoderBlock):  # the correct EncoderBlock from above, but for what follows
    def __init__(self, d_model, n_heads, d_ff, *, dropout=0.0, **kwargs):
        super().__init__(d_model, n_heads, d_ff, dropout=0.0, **kwargs)  # dropout is never passed on
