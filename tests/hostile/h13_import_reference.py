"""Hostile: takes the reference implementation of the graded chapter from tfmcourse (imports, reload,
exec of its source file, cached bytecode, gc) and submits it as its own. Expect: only stubs are
found, 0 points."""
# %%
import gc
import glob
import importlib
import os

import tfmcourse
import tfmcourse.multihead
from tfmcourse.attention import causal_mask, padding_mask, scaled_dot_product_attention

A = importlib.import_module("tfmcourse.attention")
importlib.reload(A)
ns = {}
try:
    exec(open(A.__file__).read(), ns)
    if "scaled_dot_product_attention" in ns:
        scaled_dot_product_attention = ns["scaled_dot_product_attention"]
        causal_mask, padding_mask = ns["causal_mask"], ns["padding_mask"]
except Exception:
    pass
for pyc in glob.glob(os.path.join(os.path.dirname(A.__file__), "__pycache__", "attention*.pyc")):
    import marshal
    ns2 = {}
    exec(marshal.loads(open(pyc, "rb").read()[16:]), ns2)
    scaled_dot_product_attention = ns2["scaled_dot_product_attention"]
for obj in gc.get_objects():
    if callable(obj) and getattr(obj, "__name__", "") == "scaled_dot_product_attention" \
            and not getattr(obj, "__tfm_stub__", False) and "masked_fill" in getattr(getattr(obj, "__code__", None), "co_names", ()):
        scaled_dot_product_attention = obj
scaled_dot_product_attention = getattr(tfmcourse.multihead, "scaled_dot_product_attention", scaled_dot_product_attention)
