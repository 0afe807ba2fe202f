"""Mutant m18_patchify_swaps_height_and_width: patchify splits the image as if H and W were swapped (right only for square images)."""
# %%
def patchify(images, patch_size):
    B, C, H, W = images.shape
    P = patch_size
    if H % P or W % P:
        raise ValueError(f"image size {H}x{W} is not divisible by patch_size={P}")
    x = images.reshape(B, C, W // P, P, H // P, P)
    x = x.permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, (H // P) * (W // P), C * P * P)
