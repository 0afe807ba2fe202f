"""Mutant m16_config_options_ignored: the blocks always use gelu + layernorm with 4*d_model, whatever the config says."""
# %%
import torch
import torch.nn.functional as F
from torch import nn
from tfmcourse.blocks import EncoderBlock
from tfmcourse.norm import build_norm


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
            EncoderBlock(c.d_model, c.n_heads, 4 * c.d_model, dropout=c.dropout,
                         norm_first=True, eps=1e-6)
            for _ in range(c.n_layers))
        self.norm = build_norm(c.norm, c.d_model, eps=1e-6)
        self.head = nn.Linear(c.d_model, c.n_classes)

    def no_weight_decay(self):
        return {"pos_embed", "cls_token"}

    def forward_features(self, images):
        x = self.patch_embed(images)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.size(0), -1, -1), x], dim=1)
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
