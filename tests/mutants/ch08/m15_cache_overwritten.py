"""Mutant m15_cache_overwritten: KVCache.update keeps only the newest keys and values instead of appending them (chapter 4), so a cached step attends to itself alone."""
# %% ch04
class KVCache(KVCache):  # the correct KVCache of chapter 4, but for what follows
    def update(self, k, v):
        self.k, self.v = k, v
        return k, v
