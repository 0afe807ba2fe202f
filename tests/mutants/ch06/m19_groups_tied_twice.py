"""Mutant m19_groups_tied_twice: collects parameters module by module, so a tied matrix is listed twice."""
# %%
import math

import torch
from torch import nn

from tfmcourse.ffn import build_ffn
from tfmcourse.multihead import MultiHeadAttention
from tfmcourse.norm import build_norm

# %%
class DecoderBlock(nn.Module):
    def __init__(self, d_model, n_heads, d_ff, *, dropout=0.0, ffn="relu", norm="layernorm", norm_first=True,
                 bias=True, eps=1e-5):
        super().__init__()
        self.norm_first = norm_first
        self.norm1 = build_norm(norm, d_model, eps=eps, bias=bias)
        self.self_attn = MultiHeadAttention(d_model, n_heads, bias=bias, dropout=dropout)
        self.norm2 = build_norm(norm, d_model, eps=eps, bias=bias)
        self.cross_attn = MultiHeadAttention(d_model, n_heads, bias=bias, dropout=dropout)
        self.norm3 = build_norm(norm, d_model, eps=eps, bias=bias)
        self.ffn = build_ffn(ffn, d_model, d_ff, dropout=dropout, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, x, memory, *, tgt_mask=None, memory_mask=None, is_causal=True):
        def sa(h):
            return self.dropout1(self.self_attn(h, mask=tgt_mask, is_causal=is_causal))

        def ca(h):
            return self.dropout2(self.cross_attn(h, memory, mask=memory_mask))

        if self.norm_first:
            x = x + sa(self.norm1(x))
            x = x + ca(self.norm2(x))
            x = x + self.dropout3(self.ffn(self.norm3(x)))
        else:
            x = self.norm1(x + sa(x))
            x = self.norm2(x + ca(x))
            x = self.norm3(x + self.dropout3(self.ffn(x)))
        return x

# %%
def param_groups(model, weight_decay):
    decay, no_decay = [], []
    for module in model.modules():  # module by module: a tied matrix is met once per module that holds it
        for p in module.parameters(recurse=False):
            if p.requires_grad:
                (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]

# %%
def warmup_cosine_lr(step, *, max_lr, min_lr, warmup_steps, total_steps):
    if step < warmup_steps:
        return max_lr * (step + 1) / (warmup_steps + 1)
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)
