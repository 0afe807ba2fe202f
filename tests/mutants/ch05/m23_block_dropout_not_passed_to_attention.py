"""Mutant m23_block_dropout_not_passed_to_attention: the block builds MultiHeadAttention without dropout (attention weights never dropped)."""
# %%
class EncoderBlock(EncoderBlock):  # the correct EncoderBlock from above, but for what follows
    def __init__(self, d_model, n_heads, d_ff, *, bias=True, **kwargs):
        super().__init__(d_model, n_heads, d_ff, bias=bias, **kwargs)
        self.attn = MultiHeadAttention(d_model, n_heads, bias=bias)  # dropout not passed on
