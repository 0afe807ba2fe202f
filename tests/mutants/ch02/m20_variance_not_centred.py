"""Mutant m20_variance_not_centred: LayerNorm's variance is mean(x^2), without subtracting the mean."""
# %%
import torch


class LayerNorm(LayerNorm):  # the correct LayerNorm from above, but for what follows
    def forward(self, x):
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        mean = xf.mean(dim=-1, keepdim=True)
        var = xf.pow(2).mean(dim=-1, keepdim=True)
        y = (xf - mean) * torch.rsqrt(var + self.eps) * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y.to(x.dtype)
