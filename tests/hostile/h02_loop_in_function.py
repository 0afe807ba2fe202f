"""Hostile: attention loops forever when called. Expect: its tests time out (twice, then fail at once),
the honest masks still earn their points."""
# %%
def scaled_dot_product_attention(q, k, v, mask=None, **kwargs):
    while True:
        pass
