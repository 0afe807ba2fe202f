"""Mutant m12_cls_token_appended_last: the CLS token is appended after the patches (token N, not 0)."""
# %%
import torch
import torch.nn.functional as F
from torch import nn

from tfmcourse.blocks import EncoderBlock
from tfmcourse.norm import build_norm
from tfmcourse.vit import ViTConfig

# %%
def patchify(images, patch_size):
    B, C, H, W = images.shape
    P = patch_size
    if H % P or W % P:
        raise ValueError(f"image size {H}x{W} is not divisible by patch_size={P}")
    x = images.reshape(B, C, H // P, P, W // P, P)
    x = x.permute(0, 2, 4, 1, 3, 5)
    return x.reshape(B, (H // P) * (W // P), C * P * P)

# %%
class PatchEmbedding(nn.Module):
    def __init__(self, image_size, patch_size, in_chans, d_model, *, method="conv", bias=True):
        super().__init__()
        if method not in ("conv", "reshape"):
            raise ValueError(f"method must be 'conv' or 'reshape', got {method!r}")
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} is not divisible by patch_size={patch_size}")
        self.image_size, self.patch_size, self.in_chans, self.method = image_size, patch_size, in_chans, method
        self.n_patches = (image_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_chans, d_model, kernel_size=patch_size, stride=patch_size, bias=bias)

    def forward(self, images):
        if images.shape[1:] != (self.in_chans, self.image_size, self.image_size):
            raise ValueError(f"expected images of shape (B, {self.in_chans}, {self.image_size}, {self.image_size}), "
                             f"got {tuple(images.shape)}")
        if self.method == "conv":
            return self.proj(images).flatten(2).transpose(1, 2)
        w = self.proj.weight.flatten(1)
        return F.linear(patchify(images, self.patch_size), w, self.proj.bias)

# %%
class ViT(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = self.config = config
        self.patch_embed = PatchEmbedding(c.image_size, c.patch_size, c.in_chans, c.d_model, method=c.patch_method)
        n_tokens = self.patch_embed.n_patches + (c.pool == "cls")
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.d_model)) if c.pool == "cls" else None
        self.pos_embed = nn.Parameter(torch.randn(1, n_tokens, c.d_model) * 0.02)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(c.d_model, c.n_heads, c.hidden, dropout=c.dropout, ffn=c.ffn, norm=c.norm,
                         norm_first=True, eps=1e-6)
            for _ in range(c.n_layers))
        self.norm = build_norm(c.norm, c.d_model, eps=1e-6)
        self.head = nn.Linear(c.d_model, c.n_classes)

    def no_weight_decay(self):
        return {"pos_embed", "cls_token"}

    def forward_features(self, images):
        x = self.patch_embed(images)
        if self.cls_token is not None:
            x = torch.cat([x, self.cls_token.expand(x.size(0), -1, -1)], dim=1)
        x = self.drop(x + self.pos_embed)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward_head(self, x):
        pooled = x[:, 0] if self.cls_token is not None else x.mean(dim=1)
        return self.head(pooled)

    def forward(self, images, targets=None):
        logits = self.forward_head(self.forward_features(images))
        loss = F.cross_entropy(logits.float(), targets) if targets is not None else None
        return logits, loss
