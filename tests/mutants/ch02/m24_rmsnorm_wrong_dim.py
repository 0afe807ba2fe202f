"""Mutant m24_rmsnorm_wrong_dim: RMSNorm takes the mean of x^2 over the first dim instead of the last."""
# %%
import torch


class RMSNorm(RMSNorm):  # the correct RMSNorm from above, but for what follows
    def forward(self, x):
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        y = xf * torch.rsqrt(xf.pow(2).mean(dim=0, keepdim=True) + self.eps) * self.weight
        return y.to(x.dtype)
