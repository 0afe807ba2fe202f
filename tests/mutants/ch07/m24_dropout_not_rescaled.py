"""Mutant m24_dropout_not_rescaled: the token dropout zeroes entries but does not scale the kept ones by 1/(1-p)."""
# %%
import torch


class ViT(ViT):  # the correct ViT from above, but for what follows
    def forward_features(self, images):
        x = self.patch_embed(images)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.size(0), -1, -1), x], dim=1)
        x = x + self.pos_embed
        if self.training and self.config.dropout > 0:
            x = x * (torch.rand_like(x) >= self.config.dropout).to(x.dtype)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)
