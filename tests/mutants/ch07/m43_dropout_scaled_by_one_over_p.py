"""Mutant m43_dropout_scaled_by_one_over_p: a hand-written token dropout scales the kept entries by 1/p instead of 1/(1-p)."""
# %%
import torch


class ViT(ViT):  # the correct ViT from above, but for what follows
    def forward_features(self, images):
        x = self.patch_embed(images)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.size(0), -1, -1), x], dim=1)
        x = x + self.pos_embed
        p = self.config.dropout
        if self.training and p > 0:
            x = x * (torch.rand_like(x) >= p).to(x.dtype) / p
        for block in self.blocks:
            x = block(x)
        return self.norm(x)
