"""Mutant m18_mean_not_subtracted: LayerNorm divides x by the standard deviation but does not subtract the mean first."""
# %%
import torch


class LayerNorm(LayerNorm):  # the correct LayerNorm from above, but for what follows
    def forward(self, x):
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        var = xf.var(dim=-1, keepdim=True, unbiased=False)
        y = xf * torch.rsqrt(var + self.eps) * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y.to(x.dtype)
