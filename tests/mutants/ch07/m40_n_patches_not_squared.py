"""Mutant m40_n_patches_not_squared: PatchEmbedding.n_patches is image_size // patch_size (patches per side), not its square."""
# %%
class PatchEmbedding(PatchEmbedding):  # the correct PatchEmbedding from above, but for what follows
    def __init__(self, image_size, patch_size, in_chans, d_model, *, method="conv", bias=True):
        super().__init__(image_size, patch_size, in_chans, d_model, method=method, bias=bias)
        self.n_patches = image_size // patch_size
