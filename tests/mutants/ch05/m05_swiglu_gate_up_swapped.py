"""Mutant m05_swiglu_gate_up_swapped: SwiGLU takes the second half of fc1 as the gate."""
# %%
import torch.nn.functional as F


class SwiGLU(SwiGLU):  # the correct SwiGLU from above, but for what follows
    def forward(self, x):
        up, gate = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(self.dropout(F.silu(gate) * up))
