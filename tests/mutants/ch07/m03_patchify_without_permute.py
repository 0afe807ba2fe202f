"""Mutant m03_patchify_without_permute: patchify reshapes without permuting (each 'patch' is a run of pixels)."""
# %%
def patchify(images, patch_size):
    B, C, H, W = images.shape
    P = patch_size
    if H % P or W % P:
        raise ValueError(f"image size {H}x{W} is not divisible by patch_size={P}")
    x = images
    return x.reshape(B, (H // P) * (W // P), C * P * P)
