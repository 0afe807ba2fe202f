"""Mutant m27_rmsnorm_default_eps_1e-5: RMSNorm's default eps is LayerNorm's 1e-5 instead of 1e-6."""
# %%


class RMSNorm(RMSNorm):  # the correct RMSNorm from above, but for what follows
    def __init__(self, d_model, eps=1e-5):
        super().__init__(d_model, eps)
