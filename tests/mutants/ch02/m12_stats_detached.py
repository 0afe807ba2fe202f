"""Mutant m12_stats_detached: LayerNorm's mean and variance are detached: right values, wrong input gradient."""
# %%
import torch


class LayerNorm(LayerNorm):  # the correct LayerNorm from above, but for what follows
    def forward(self, x):
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        mean = xf.mean(dim=-1, keepdim=True).detach()
        var = xf.var(dim=-1, keepdim=True, unbiased=False).detach()
        y = (xf - mean) * torch.rsqrt(var + self.eps) * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y.to(x.dtype)
