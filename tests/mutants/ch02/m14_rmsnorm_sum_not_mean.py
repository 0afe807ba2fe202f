"""Mutant m14_rmsnorm_sum_not_mean: RMSNorm uses sum(x^2) instead of mean(x^2)."""
# %%
import torch


class RMSNorm(RMSNorm):  # the correct RMSNorm from above, but for what follows
    def forward(self, x):
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        y = xf * torch.rsqrt(xf.pow(2).sum(dim=-1, keepdim=True) + self.eps) * self.weight
        return y.to(x.dtype)
