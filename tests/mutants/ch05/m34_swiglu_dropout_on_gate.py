"""Mutant m34_swiglu_dropout_on_gate: SwiGLU drops the gate before silu instead of the gated product."""
# %%
import torch.nn.functional as F


class SwiGLU(SwiGLU):  # the correct SwiGLU from above, but for what follows
    def forward(self, x):
        gate, up = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(F.silu(self.dropout(gate)) * up)
