"""Mutant m09_cls_pool_is_mean_of_all_tokens: with a CLS token, pooling averages every token (CLS included) instead of taking CLS."""
# %%
class ViT(ViT):  # the correct ViT from above, but for what follows
    def forward_head(self, x):
        pooled = x.mean(dim=1)
        return self.head(pooled)
