"""Mutant m06_pos_embed_without_cls_slot: pos_embed has one row per patch only (off by one with a CLS token)."""
# %%
import torch
from torch import nn


class ViT(ViT):  # the correct ViT from above, but for what follows
    def __init__(self, config):
        super().__init__(config)
        self.pos_embed = nn.Parameter(torch.randn(1, self.patch_embed.n_patches, config.d_model) * 0.02)

    def forward_features(self, images):
        x = self.patch_embed(images)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.size(0), -1, -1), x], dim=1)
        n = self.pos_embed.size(1)  # positions for the last n tokens only
        x = self.drop(torch.cat([x[:, :-n], x[:, -n:] + self.pos_embed], 1))
        for block in self.blocks:
            x = block(x)
        return self.norm(x)
