"""Mutant m07_swiglu_sigmoid_gate: SwiGLU gates with sigmoid (GLU) instead of silu."""
# %%
import torch


class SwiGLU(SwiGLU):  # the correct SwiGLU from above, but for what follows
    def forward(self, x):
        gate, up = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(self.dropout(torch.sigmoid(gate) * up))
