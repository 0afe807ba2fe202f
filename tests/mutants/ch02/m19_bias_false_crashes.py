"""Mutant m19_bias_false_crashes: LayerNorm always adds self.bias, so bias=False (bias None) crashes in forward."""
# %%
import torch


class LayerNorm(LayerNorm):  # the correct LayerNorm from above, but for what follows
    def forward(self, x):
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        mean = xf.mean(dim=-1, keepdim=True)
        var = xf.var(dim=-1, keepdim=True, unbiased=False)
        y = (xf - mean) * torch.rsqrt(var + self.eps) * self.weight
        y = y + self.bias
        return y.to(x.dtype)
