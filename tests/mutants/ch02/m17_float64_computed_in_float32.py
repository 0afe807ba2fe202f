"""Mutant m17_float64_computed_in_float32: LayerNorm computes float64 inputs in float32 (x.float() instead of promote_types)."""
# %%
import torch


class LayerNorm(LayerNorm):  # the correct LayerNorm from above, but for what follows
    def forward(self, x):
        xf = x.float()
        mean = xf.mean(dim=-1, keepdim=True)
        var = xf.var(dim=-1, keepdim=True, unbiased=False)
        y = (xf - mean) * torch.rsqrt(var + self.eps) * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y.to(x.dtype)
