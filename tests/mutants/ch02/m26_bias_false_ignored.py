"""Mutant m26_bias_false_ignored: LayerNorm ignores bias=False: it always has a bias, and adds it."""
# %%


class LayerNorm(LayerNorm):  # the correct LayerNorm from above, but for what follows
    def __init__(self, d_model, eps=1e-5, *, bias=True):
        super().__init__(d_model, eps, bias=True)
