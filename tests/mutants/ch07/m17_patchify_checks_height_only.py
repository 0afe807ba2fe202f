"""Mutant m17_patchify_checks_height_only: patchify checks that P divides the height but not the width."""
# %%
def patchify(images, patch_size):
    B, C, H, W = images.shape
    P = patch_size
    if H % P:
        raise ValueError(f"image height {H} is not divisible by patch_size={P}")
    x = images.reshape(B, C, H // P, P, W // P, P)
    x = x.permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, (H // P) * (W // P), C * P * P)
