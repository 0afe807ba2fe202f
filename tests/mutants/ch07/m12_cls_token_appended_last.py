"""Mutant m12_cls_token_appended_last: the CLS token is appended after the patches (token N, not 0)."""
# %%
import torch


class ViT(ViT):  # the correct ViT from above, but for what follows
    def forward_features(self, images):
        x = self.patch_embed(images)
        if self.cls_token is not None:
            x = torch.cat([x, self.cls_token.expand(x.size(0), -1, -1)], dim=1)
        x = self.drop(x + self.pos_embed)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)
