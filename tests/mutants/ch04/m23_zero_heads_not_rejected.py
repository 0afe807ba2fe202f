"""Mutant m23_zero_heads_not_rejected: only d_model % n_heads is checked, so n_heads=0 fails with ZeroDivisionError."""
# %%
def _check_heads(d_model, n_heads):
    if d_model % n_heads:
        raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
