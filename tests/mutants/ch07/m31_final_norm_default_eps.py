"""Mutant m31_final_norm_default_eps: the final norm keeps build_norm's default eps (1e-5) instead of 1e-6."""
# %%
class ViT(ViT):  # the correct ViT from above, but for what follows
    def __init__(self, config):
        super().__init__(config)
        self.norm = build_norm(config.norm, config.d_model)
