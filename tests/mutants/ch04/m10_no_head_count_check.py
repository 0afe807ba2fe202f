"""Mutant m10_no_head_count_check: n_heads that do not divide d_model are silently accepted."""
# %%
def _check_heads(d_model, n_heads):
    if n_heads < 1:
        raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
