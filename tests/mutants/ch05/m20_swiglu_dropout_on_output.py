"""Mutant m20_swiglu_dropout_on_output: SwiGLU applies dropout to fc2's output instead of the gated hidden units."""
# %%
import torch.nn.functional as F


class SwiGLU(SwiGLU):  # the correct SwiGLU from above, but for what follows
    def forward(self, x):
        gate, up = self.fc1(x).chunk(2, dim=-1)
        return self.dropout(self.fc2(F.silu(gate) * up))
