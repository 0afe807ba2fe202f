"""Hostile: a fork bomb at import. Expect: it runs into the process limit, the forked copies end,
the honest masks still earn their points."""
# %%
import os

children = []
while True:
    children.append(os.fork())
