"""Hostile (or just noisy): prints about 100 MB, then implements the masks honestly. Expect: the
output is capped (the print fails), the masks earn their points."""
# %%
import os

line = "x" * 1000 + "\n"
for _ in range(100_000):
    os.write(1, line.encode())
