"""Mutant m13_no_loss: forward returns the logits only, never the loss."""
# %%
import torch.nn.functional as F


class ViT(ViT):  # the correct ViT from above, but for what follows
    def forward(self, images, targets=None):
        logits = self.forward_head(self.forward_features(images))
        loss = F.cross_entropy(logits.float(), targets) if targets is not None else None
        return logits
