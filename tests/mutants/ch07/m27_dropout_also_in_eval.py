"""Mutant m27_dropout_also_in_eval: F.dropout without training=self.training drops tokens in eval mode too."""
# %%
import torch
import torch.nn.functional as F


class ViT(ViT):  # the correct ViT from above, but for what follows
    def forward_features(self, images):
        x = self.patch_embed(images)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.size(0), -1, -1), x], dim=1)
        x = F.dropout(x + self.pos_embed, self.config.dropout)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)
