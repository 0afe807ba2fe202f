"""Mutant m20_image_check_height_only: PatchEmbedding.forward checks the channels and the height of the images, not the width."""
# %%
import torch.nn.functional as F


class PatchEmbedding(PatchEmbedding):  # the correct PatchEmbedding from above, but for what follows
    def forward(self, images):
        if images.shape[1] != self.in_chans or images.shape[2] != self.image_size:
            raise ValueError(f"expected images of shape (B, {self.in_chans}, {self.image_size}, {self.image_size}), "
                             f"got {tuple(images.shape)}")
        if self.method == "conv":
            return self.proj(images).flatten(2).transpose(1, 2)
        w = self.proj.weight.flatten(1)
        return F.linear(patchify(images, self.patch_size), w, self.proj.bias)
