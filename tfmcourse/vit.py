"""Vision Transformer (Dosovitskiy et al. 2021): an image is a sequence of patches.

image ``(B, C, H, W)`` -> patches ``(B, N, C*P*P)`` -> linear embedding ``(B, N, D)`` -> [CLS] + learned
positions -> pre-LN encoder -> CLS token or mean of patch tokens -> classifier.

Cutting into patches and applying one linear map to each is exactly a ``Conv2d`` with kernel size and
stride ``P``: :class:`PatchEmbedding` does either, with the same weight, and the tests prove them equal.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import EncoderBlock
from .norm import build_norm
from .optim import make_optimizer

__all__ = ["patchify", "unpatchify", "PatchEmbedding", "ViTConfig", "ViT"]


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """Cut images into non-overlapping ``P x P`` patches, row by row, each flattened as ``(C, P, P)``.

    Shapes:
        ``(B, C, H, W)`` -> ``(B, N, C*P*P)`` with ``N = (H/P) * (W/P)``.
    """
    # BEGIN SOLUTION ch07
    B, C, H, W = images.shape
    P = patch_size
    if H % P or W % P:
        raise ValueError(f"image size {H}x{W} is not divisible by patch_size={P}")
    x = images.reshape(B, C, H // P, P, W // P, P)  # (B, C, h, P, w, P)
    x = x.permute(0, 2, 4, 1, 3, 5)  # (B, h, w, C, P, P)
    return x.reshape(B, (H // P) * (W // P), C * P * P)
    # END SOLUTION


def unpatchify(patches: Tensor, patch_size: int, image_size: int | tuple[int, int], channels: int) -> Tensor:
    """Inverse of :func:`patchify`: ``(B, N, C*P*P)`` -> ``(B, C, H, W)``."""
    H, W = (image_size, image_size) if isinstance(image_size, int) else image_size
    P, C, B = patch_size, channels, patches.size(0)
    x = patches.reshape(B, H // P, W // P, C, P, P).permute(0, 3, 1, 4, 2, 5)  # (B, C, h, P, w, P)
    return x.reshape(B, C, H, W)


class PatchEmbedding(nn.Module):
    """Patches to ``d_model`` vectors, by ``patchify`` + matmul or by a strided ``Conv2d``.

    Both methods use the one weight ``proj.weight`` of shape ``(d_model, C, P, P)``.

    Args:
        image_size: height and width of the (square) input images.
        patch_size: side of a patch; must divide ``image_size``.
        in_chans: image channels.
        d_model: embedding width.
        method: ``"conv"`` (fast) or ``"reshape"`` (explicit).

    Shapes:
        ``(B, C, H, W)`` -> ``(B, N, d_model)``.
    """

    def __init__(self, image_size: int, patch_size: int, in_chans: int, d_model: int, *,
                 method: str = "conv", bias: bool = True) -> None:
        super().__init__()
        # BEGIN SOLUTION ch07
        if method not in ("conv", "reshape"):
            raise ValueError(f"method must be 'conv' or 'reshape', got {method!r}")
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} is not divisible by patch_size={patch_size}")
        self.image_size, self.patch_size, self.in_chans, self.method = image_size, patch_size, in_chans, method
        self.n_patches = (image_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_chans, d_model, kernel_size=patch_size, stride=patch_size, bias=bias)
        # END SOLUTION

    def forward(self, images: Tensor) -> Tensor:
        # BEGIN SOLUTION ch07
        if images.shape[1:] != (self.in_chans, self.image_size, self.image_size):
            raise ValueError(f"expected images of shape (B, {self.in_chans}, {self.image_size}, {self.image_size}), "
                             f"got {tuple(images.shape)}; resize them or change image_size/in_chans")
        if self.method == "conv":
            return self.proj(images).flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, N, D)
        w = self.proj.weight.flatten(1)  # (D, C*P*P), the same (C, P, P) order as patchify
        return F.linear(patchify(images, self.patch_size), w, self.proj.bias)
        # END SOLUTION


@dataclass(frozen=True)
class ViTConfig:
    """Sizes of a :class:`ViT`. Defaults are ViT-B/16 at 224 px."""

    image_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    n_classes: int = 1000
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int | None = None
    dropout: float = 0.0
    pool: str = "cls"
    patch_method: str = "conv"
    norm: str = "layernorm"
    ffn: str = "gelu"

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size={self.image_size} must be divisible by patch_size={self.patch_size}; "
                             f"pick a patch size among its divisors")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {self.pool!r}")
        if min(self.image_size, self.patch_size, self.in_chans, self.n_classes, self.n_layers) < 1:
            raise ValueError("sizes and counts in ViTConfig must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def hidden(self) -> int:
        return self.d_ff if self.d_ff is not None else 4 * self.d_model


class ViT(nn.Module):
    """Vision Transformer classifier.

    Shapes:
        images ``(B, C, H, W)`` -> logits ``(B, n_classes)``; ``forward`` returns ``(logits, loss)``.
    """

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        # BEGIN SOLUTION ch07
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
        self.apply(self._init_weights)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        # END SOLUTION

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    @classmethod
    def from_timm(cls, source, **overrides) -> ViT:
        """A ViT holding the weights of a timm ``VisionTransformer``: a timm model, a local folder
        (``config.json`` + weights) or a state dict; nothing is downloaded. See
        :func:`tfmcourse.pretrained.vit_from_timm`."""
        from .pretrained import vit_from_timm
        return vit_from_timm(source, **overrides)

    def no_weight_decay(self) -> set[str]:
        """Learned tokens and positions are embeddings, not weights to shrink."""
        return {"pos_embed", "cls_token"}

    def forward_features(self, images: Tensor) -> Tensor:
        """Token states after the encoder and final norm, ``(B, N (+1), d_model)``."""
        # BEGIN SOLUTION ch07
        x = self.patch_embed(images)  # (B, N, D)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.size(0), -1, -1), x], dim=1)  # (B, 1 + N, D)
        x = self.drop(x + self.pos_embed)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)
        # END SOLUTION

    def forward_head(self, x: Tensor) -> Tensor:
        """Pool the tokens (CLS or mean of patch tokens) and classify: ``(B, n_tokens, D)`` -> ``(B, n_classes)``."""
        # BEGIN SOLUTION ch07
        pooled = x[:, 0] if self.cls_token is not None else x.mean(dim=1)
        return self.head(pooled)
        # END SOLUTION

    def forward(self, images: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        logits = self.forward_head(self.forward_features(images))
        loss = F.cross_entropy(logits.float(), targets) if targets is not None else None
        return logits, loss

    def configure_optimizers(self, *, lr: float = 1e-3, weight_decay: float = 0.05,
                             betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.AdamW:
        """AdamW with weight decay on matrices only."""
        return make_optimizer(self, lr=lr, weight_decay=weight_decay, betas=betas)
