"""Hostile: an infinite loop while the notebook loads (then honest masks). Expect: the loop cell is
skipped after the load time limit, the masks earn their points, attention scores 0."""
# %%
while True:
    pass
