"""Hostile: os._exit(0) at import (no cleanup, no exception). Expect: the cell is skipped after the
worker dies, the masks earn their points, attention scores 0."""
# %%
import os

os._exit(0)
