"""Mutant m21_rmsnorm_weight_unused: RMSNorm never multiplies by its weight."""
# %%
import torch


class RMSNorm(RMSNorm):  # the correct RMSNorm from above, but for what follows
    def forward(self, x):
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        y = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return y.to(x.dtype)
