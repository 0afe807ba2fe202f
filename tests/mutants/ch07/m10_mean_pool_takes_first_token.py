"""Mutant m10_mean_pool_takes_first_token: pool='mean' is ignored: the first token is always used."""
# %%
class ViT(ViT):  # the correct ViT from above, but for what follows
    def forward_head(self, x):
        pooled = x[:, 0]
        return self.head(pooled)
