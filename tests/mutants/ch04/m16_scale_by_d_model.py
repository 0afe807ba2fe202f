"""Mutant m16_scale_by_d_model: scores scaled by 1/sqrt(d_model) instead of 1/sqrt(head_dim) in the batched module."""
# %%
import torch.nn.functional as F
from tfmcourse.attention import scaled_dot_product_attention


class MultiHeadAttention(MultiHeadAttention):  # the correct MultiHeadAttention from above, but for what follows
    def forward(self, x, context=None, *, mask=None, is_causal=False, cache=None, rope=None, need_weights=False):
        B, T, C = x.shape
        if context is None:
            q, k, v = self.qkv(x).split(C, dim=2)
        else:
            w_q, w_kv = self.qkv.weight.split([C, 2 * C])
            b_q, b_kv = self.qkv.bias.split([C, 2 * C]) if self.qkv.bias is not None else (None, None)
            q = F.linear(x, w_q, b_q)
            k, v = F.linear(context, w_kv, b_kv).split(C, dim=2)
        q, k, v = self._split_heads(q), self._split_heads(k), self._split_heads(v)
        if rope is not None:
            q, k = rope(q, k, offset=len(cache) if cache is not None else 0)
        if cache is not None:
            k, v = cache.update(k, v)
        if is_causal and T == 1:
            is_causal = False
        dropout_p = self.dropout if self.training else 0.0
        weights = None
        if need_weights or self.keep_weights or not self.fused:
            y, weights = scaled_dot_product_attention(q, k, v, mask, is_causal=is_causal, dropout_p=dropout_p,
                                                      return_weights=True, scale=C ** -0.5)
            if self.keep_weights:
                self.last_weights = weights.detach()
        else:
            y = scaled_dot_product_attention(q, k, v, mask, is_causal=is_causal, dropout_p=dropout_p, scale=C ** -0.5)
        y = y.transpose(1, 2).reshape(B, T, C)
        y = self.proj(y)
        return (y, weights) if need_weights else y
