"""Mutant m04_bias_never_added: LayerNorm creates a bias but never adds it."""
# %%
import torch


class LayerNorm(LayerNorm):  # the correct LayerNorm from above, but for what follows
    def forward(self, x):
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        mean = xf.mean(dim=-1, keepdim=True)
        var = xf.var(dim=-1, keepdim=True, unbiased=False)
        y = (xf - mean) * torch.rsqrt(var + self.eps) * self.weight
        if self.bias is not None:
            y = y
        return y.to(x.dtype)
