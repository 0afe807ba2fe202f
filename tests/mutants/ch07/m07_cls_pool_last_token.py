"""Mutant m07_cls_pool_last_token: CLS pooling reads the last token instead of token 0."""
# %%
class ViT(ViT):  # the correct ViT from above, but for what follows
    def forward_head(self, x):
        pooled = x[:, -1] if self.cls_token is not None else x.mean(dim=1)
        return self.head(pooled)
