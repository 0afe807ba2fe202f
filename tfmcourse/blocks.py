"""Transformer blocks: attention and FFN sub-layers wrapped in residual connections and norms.

Post-LN (the original paper): ``x = LayerNorm(x + Sublayer(x))``.
Pre-LN (GPT-2 and almost every model since): ``x = x + Sublayer(LayerNorm(x))``, which keeps an
un-normalised residual stream from input to output and trains stably without warm-up tricks
(Xiong et al. 2020). Pre-LN is the default; ``norm_first=False`` gives the paper's post-LN.

A decoder-only model (GPT) uses :class:`EncoderBlock` with a causal mask: the "decoder" of GPT has no
cross-attention, so structurally it is an encoder block that cannot look ahead.
"""
from __future__ import annotations

from torch import Tensor, nn

from .embedding import RotaryEmbedding
from .ffn import build_ffn
from .multihead import KVCache, MultiHeadAttention
from .norm import build_norm

__all__ = ["EncoderBlock", "DecoderBlock"]


class EncoderBlock(nn.Module):
    """Self-attention then FFN, each in a residual connection.

    Args:
        d_model: token width.
        n_heads: attention heads.
        d_ff: FFN hidden width.
        dropout: dropout on attention weights and on each sub-layer's output.
        ffn: ``"relu"``, ``"gelu"`` or ``"swiglu"``.
        norm: ``"layernorm"`` or ``"rmsnorm"``.
        norm_first: pre-LN (True) or post-LN (False).
        bias: biases in linear layers and LayerNorm.
        eps: norm epsilon.

    Shapes:
        ``(B, T, d_model)`` -> ``(B, T, d_model)``.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, *, dropout: float = 0.0, ffn: str = "relu",
                 norm: str = "layernorm", norm_first: bool = True, bias: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        # BEGIN SOLUTION ch05
        self.norm_first = norm_first
        self.norm1 = build_norm(norm, d_model, eps=eps, bias=bias)
        self.attn = MultiHeadAttention(d_model, n_heads, bias=bias, dropout=dropout)
        self.norm2 = build_norm(norm, d_model, eps=eps, bias=bias)
        self.ffn = build_ffn(ffn, d_model, d_ff, dropout=dropout, bias=bias)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        # END SOLUTION

    def forward(self, x: Tensor, mask: Tensor | None = None, *, is_causal: bool = False,
                cache: KVCache | None = None, rope: RotaryEmbedding | None = None) -> Tensor:
        # BEGIN SOLUTION ch05
        def sa(h: Tensor) -> Tensor:
            return self.dropout1(self.attn(h, mask=mask, is_causal=is_causal, cache=cache, rope=rope))

        if self.norm_first:
            x = x + sa(self.norm1(x))
            x = x + self.dropout2(self.ffn(self.norm2(x)))
        else:
            x = self.norm1(x + sa(x))
            x = self.norm2(x + self.dropout2(self.ffn(x)))
        return x
        # END SOLUTION


class DecoderBlock(nn.Module):
    """Masked self-attention, cross-attention over the encoder output, then FFN.

    Arguments as for :class:`EncoderBlock`.

    Shapes:
        x ``(B, T, d_model)``, memory ``(B, S, d_model)`` -> ``(B, T, d_model)``.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, *, dropout: float = 0.0, ffn: str = "relu",
                 norm: str = "layernorm", norm_first: bool = True, bias: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        # BEGIN SOLUTION ch06
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
        # END SOLUTION

    def forward(self, x: Tensor, memory: Tensor, *, tgt_mask: Tensor | None = None,
                memory_mask: Tensor | None = None, is_causal: bool = True) -> Tensor:
        """Args:
            x: decoder input ``(B, T, d_model)``.
            memory: encoder output ``(B, S, d_model)``.
            tgt_mask: extra self-attention mask (e.g. target padding), True = may attend.
            memory_mask: cross-attention mask (e.g. source padding), True = may attend.
            is_causal: forbid attending to later target positions.
        """
        # BEGIN SOLUTION ch06
        def sa(h: Tensor) -> Tensor:
            return self.dropout1(self.self_attn(h, mask=tgt_mask, is_causal=is_causal))

        def ca(h: Tensor) -> Tensor:
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
        # END SOLUTION
