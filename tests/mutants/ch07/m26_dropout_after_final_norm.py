"""Mutant m26_dropout_after_final_norm: the token dropout is applied to the output of the final norm instead of the embedded tokens."""
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
        return self.drop(self.norm(x))
