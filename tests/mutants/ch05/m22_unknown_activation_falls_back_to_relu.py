"""Mutant m22_unknown_activation_falls_back_to_relu: an unknown activation silently gives ReLU instead of a ValueError."""
# %%
class FeedForward(FeedForward):  # the correct FeedForward from above, but for what follows
    def __init__(self, d_model, d_ff, *, activation="relu", **kwargs):
        super().__init__(d_model, d_ff, activation=activation if activation in ("relu", "gelu") else "relu", **kwargs)
