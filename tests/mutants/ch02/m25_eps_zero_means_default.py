"""Mutant m25_eps_zero_means_default: an explicit eps=0.0 is treated as 'not given' (eps or 1e-5 / eps or 1e-6)."""
# %%


class LayerNorm(LayerNorm):  # the correct LayerNorm from above, but for what follows
    def __init__(self, d_model, eps=1e-5, *, bias=True):
        super().__init__(d_model, eps or 1e-5, bias=bias)


class RMSNorm(RMSNorm):  # the correct RMSNorm from above, but for what follows
    def __init__(self, d_model, eps=1e-6):
        super().__init__(d_model, eps or 1e-6)
