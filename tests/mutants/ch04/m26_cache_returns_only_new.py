"""Mutant m26_cache_returns_only_new: KVCache.update stores all keys/values but returns only the new ones."""
# %%
import torch


class KVCache(KVCache):  # the correct KVCache from above, but for what follows
    def update(self, k, v):
        self.k = k if self.k is None else torch.cat([self.k, k], dim=-2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=-2)
        return k, v
