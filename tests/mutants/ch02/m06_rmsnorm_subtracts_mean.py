"""Mutant m06_rmsnorm_subtracts_mean: RMSNorm centres x first (it becomes LayerNorm without bias)."""
# %%
import torch


class RMSNorm(RMSNorm):  # the correct RMSNorm from above, but for what follows
    def forward(self, x):
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        xf = xf - xf.mean(dim=-1, keepdim=True)
        y = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight
        return y.to(x.dtype)
