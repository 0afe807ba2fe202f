"""Mutant m32_no_weight_init: __init__ never calls self.apply(self._init_weights) nor initialises the CLS token (PyTorch's defaults stay)."""
# %%
import torch
from torch import nn


class ViT(ViT):  # the correct ViT from above, but for what follows
    def __init__(self, config):
        nn.Module.__init__(self)
        c = self.config = config
        self.patch_embed = PatchEmbedding(c.image_size, c.patch_size, c.in_chans, c.d_model, method=c.patch_method)
        n_tokens = self.patch_embed.n_patches + (c.pool == "cls")
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.d_model)) if c.pool == "cls" else None
        self.pos_embed = nn.Parameter(torch.randn(1, n_tokens, c.d_model) * 0.02)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(c.d_model, c.n_heads, c.hidden, dropout=c.dropout, ffn=c.ffn, norm=c.norm,
                         norm_first=True, eps=1e-6)
            for _ in range(c.n_layers))
        self.norm = build_norm(c.norm, c.d_model, eps=1e-6)
        self.head = nn.Linear(c.d_model, c.n_classes)
