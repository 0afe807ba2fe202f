"""Mutant m39_dropout_after_the_blocks: the token dropout is applied after the encoder blocks (before the final norm) instead of before them."""
# %%
import torch


class ViT(ViT):  # the correct ViT from above, but for what follows
    def forward_features(self, images):
        x = self.patch_embed(images)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.size(0), -1, -1), x], dim=1)
        x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(self.drop(x))
