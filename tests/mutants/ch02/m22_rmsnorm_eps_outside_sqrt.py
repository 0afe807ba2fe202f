"""Mutant m22_rmsnorm_eps_outside_sqrt: RMSNorm divides by sqrt(mean(x^2)) + eps instead of sqrt(mean(x^2) + eps)."""
# %%
import torch


class RMSNorm(RMSNorm):  # the correct RMSNorm from above, but for what follows
    def forward(self, x):
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        y = xf / (xf.pow(2).mean(dim=-1, keepdim=True).sqrt() + self.eps) * self.weight
        return y.to(x.dtype)
