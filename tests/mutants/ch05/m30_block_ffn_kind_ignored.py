"""Mutant m30_block_ffn_kind_ignored: ffn="gelu" builds a ReLU FFN (the activation is not passed on)."""
# %%
class EncoderBlock(EncoderBlock):  # the correct EncoderBlock from above, but for what follows
    def __init__(self, d_model, n_heads, d_ff, *, ffn="relu", dropout=0.0, bias=True, **kwargs):
        super().__init__(d_model, n_heads, d_ff, ffn=ffn, dropout=dropout, bias=bias, **kwargs)
        if ffn != "swiglu":
            self.ffn = FeedForward(d_model, d_ff, dropout=dropout, bias=bias)
