"""Mutant m05_gamma_beta_swapped: LayerNorm multiplies by bias and adds weight."""
# %%
import torch


class LayerNorm(LayerNorm):  # the correct LayerNorm from above, but for what follows
    def forward(self, x):
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        mean = xf.mean(dim=-1, keepdim=True)
        var = xf.var(dim=-1, keepdim=True, unbiased=False)
        y = (xf - mean) * torch.rsqrt(var + self.eps)
        if self.bias is not None:
            y = y * self.bias + self.weight
        else:
            y = y * self.weight
        return y.to(x.dtype)
