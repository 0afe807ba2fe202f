"""Mutant m23_rmsnorm_float64_computed_in_float32: RMSNorm computes float64 inputs in float32 (x.float() instead of promote_types)."""
# %%
import torch


class RMSNorm(RMSNorm):  # the correct RMSNorm from above, but for what follows
    def forward(self, x):
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight
        return y.to(x.dtype)
