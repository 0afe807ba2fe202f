"""Mutant m19_unknown_method_accepted: PatchEmbedding accepts any method name (anything but "conv" silently means "reshape")."""
# %%
from torch import nn


class PatchEmbedding(PatchEmbedding):  # the correct PatchEmbedding from above, but for what follows
    def __init__(self, image_size, patch_size, in_chans, d_model, *, method="conv", bias=True):
        nn.Module.__init__(self)
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} is not divisible by patch_size={patch_size}")
        self.image_size, self.patch_size, self.in_chans, self.method = image_size, patch_size, in_chans, method
        self.n_patches = (image_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_chans, d_model, kernel_size=patch_size, stride=patch_size, bias=bias)
