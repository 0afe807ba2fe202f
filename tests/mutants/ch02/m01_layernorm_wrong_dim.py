"""Mutant m01_layernorm_wrong_dim: LayerNorm takes mean and variance over the first dim (the batch) instead of the last."""
# %%
import torch


class LayerNorm(LayerNorm):  # the correct LayerNorm from above, but for what follows
    def forward(self, x):
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        mean = xf.mean(dim=0, keepdim=True)
        var = xf.var(dim=0, keepdim=True, unbiased=False)
        y = (xf - mean) * torch.rsqrt(var + self.eps) * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y.to(x.dtype)
