"""Mutant m41_proj_is_a_linear: proj is an nn.Linear(C*P*P, d_model) on the patches instead of an nn.Conv2d (its weight has another shape)."""
# %%
from torch import nn


class PatchEmbedding(PatchEmbedding):  # the correct PatchEmbedding from above, but for what follows
    def __init__(self, image_size, patch_size, in_chans, d_model, *, method="conv", bias=True):
        super().__init__(image_size, patch_size, in_chans, d_model, method=method, bias=bias)
        self.proj = nn.Linear(in_chans * patch_size * patch_size, d_model, bias=bias)

    def forward(self, images):
        if images.shape[1:] != (self.in_chans, self.image_size, self.image_size):
            raise ValueError(f"expected images of shape (B, {self.in_chans}, {self.image_size}, {self.image_size}), "
                             f"got {tuple(images.shape)}")
        return self.proj(patchify(images, self.patch_size))
