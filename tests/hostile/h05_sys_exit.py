"""Hostile: sys.exit(0) at import, hoping the grader reads "exit 0" as success. Expect: SystemExit
reported, loading goes on, the masks earn their points, attention scores 0."""
# %%
import sys

sys.exit(0)
