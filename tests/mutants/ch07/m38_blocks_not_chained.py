"""Mutant m38_blocks_not_chained: every block reads the embedded tokens instead of the previous block's output (only the last block counts)."""
# %%
import torch


class ViT(ViT):  # the correct ViT from above, but for what follows
    def forward_features(self, images):
        x = self.patch_embed(images)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.size(0), -1, -1), x], dim=1)
        x = self.drop(x + self.pos_embed)
        h = x
        for block in self.blocks:
            h = block(x)
        return self.norm(h)
