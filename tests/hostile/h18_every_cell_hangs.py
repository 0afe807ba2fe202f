"""Hostile: every cell is an infinite loop. Expect: loading stops when the submission's time budget is
used up (not after every cell's own time limit in turn), the slot is freed, 0 points."""
# %%
while True:
    pass
# %%
while True:
    pass
# %%
while True:
    pass
# %%
while True:
    pass
# %%
while True:
    pass
# %%
while True:
    pass
# %%
while True:
    pass
# %%
while True:
    pass
