"""Mutant m24_block_dropout_not_passed_to_ffn: the block builds its FFN without dropout (hidden units never dropped)."""
# %%
class EncoderBlock(EncoderBlock):  # the correct EncoderBlock from above, but for what follows
    def __init__(self, d_model, n_heads, d_ff, *, ffn="relu", bias=True, **kwargs):
        super().__init__(d_model, n_heads, d_ff, ffn=ffn, bias=bias, **kwargs)
        if ffn == "swiglu":
            self.ffn = SwiGLU(d_model, d_ff, bias=bias)  # dropout not passed on
        else:
            self.ffn = FeedForward(d_model, d_ff, activation=ffn, bias=bias)
