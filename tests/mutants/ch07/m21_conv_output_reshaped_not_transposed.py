"""Mutant m21_conv_output_reshaped_not_transposed: the conv method reshapes (B, D, h, w) to (B, N, D) instead of flattening and transposing."""
# %%
import torch.nn.functional as F


class PatchEmbedding(PatchEmbedding):  # the correct PatchEmbedding from above, but for what follows
    def forward(self, images):
        if images.shape[1:] != (self.in_chans, self.image_size, self.image_size):
            raise ValueError(f"expected images of shape (B, {self.in_chans}, {self.image_size}, {self.image_size}), "
                             f"got {tuple(images.shape)}")
        if self.method == "conv":
            out = self.proj(images)  # (B, D, h, w)
            return out.reshape(out.size(0), -1, out.size(1))
        w = self.proj.weight.flatten(1)
        return F.linear(patchify(images, self.patch_size), w, self.proj.bias)
