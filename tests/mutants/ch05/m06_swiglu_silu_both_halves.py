"""Mutant m06_swiglu_silu_both_halves: SwiGLU applies silu to both halves."""
# %%
import torch.nn.functional as F


class SwiGLU(SwiGLU):  # the correct SwiGLU from above, but for what follows
    def forward(self, x):
        gate, up = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(self.dropout(F.silu(gate) * F.silu(up)))
