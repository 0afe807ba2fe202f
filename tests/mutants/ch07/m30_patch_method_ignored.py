"""Mutant m30_patch_method_ignored: the ViT builds its PatchEmbedding without method=config.patch_method (always "conv")."""
# %%
class ViT(ViT):  # the correct ViT from above, but for what follows
    def __init__(self, config):
        super().__init__(config)
        c = config
        self.patch_embed = PatchEmbedding(c.image_size, c.patch_size, c.in_chans, c.d_model)
