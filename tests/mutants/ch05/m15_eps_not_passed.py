"""Mutant m15_eps_not_passed: the block ignores eps (its norms keep their default eps)."""
# %%
class EncoderBlock(EncoderBlock):  # the correct EncoderBlock from above, but for what follows
    def __init__(self, d_model, n_heads, d_ff, *, eps=1e-5, **kwargs):
        super().__init__(d_model, n_heads, d_ff, **kwargs)  # eps is never passed on
