"""Mutant m22_vit_block_outputs_discarded: ViT.forward_features calls each block without keeping its output (block(x), not x = block(x); chapter 7), so the CLS token never sees the image."""
# %% ch07
import torch


class ViT(ViT):  # the correct ViT of chapter 7, but for what follows
    def forward_features(self, images):
        x = self.patch_embed(images)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.size(0), -1, -1), x], dim=1)
        x = self.drop(x + self.pos_embed)
        for block in self.blocks:
            block(x)
        return self.norm(x)
