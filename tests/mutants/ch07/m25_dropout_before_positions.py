"""Mutant m25_dropout_before_positions: dropout is applied to the tokens before the positions are added."""
# %%
import torch


class ViT(ViT):  # the correct ViT from above, but for what follows
    def forward_features(self, images):
        x = self.patch_embed(images)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.size(0), -1, -1), x], dim=1)
        x = self.drop(x) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)
