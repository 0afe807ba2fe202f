"""Stacks of blocks and the full encoder–decoder Transformer of Vaswani et al. (2017).

:class:`Encoder` and :class:`Decoder` work on embeddings (like ``nn.TransformerEncoder`` /
``nn.TransformerDecoder``); :class:`Transformer` adds token embeddings, sinusoidal positions and the
output head, and trains on ``(src, tgt_in, targets)`` triples. The decoder-only :class:`GPT` lives in
:mod:`tfmcourse.gpt` and is re-exported here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .blocks import DecoderBlock, EncoderBlock
from .embedding import SinusoidalPositionalEncoding, TokenEmbedding
from .gpt import GPT, GPTConfig
from .norm import build_norm
from .utils import token_cross_entropy

__all__ = ["Encoder", "Decoder", "Seq2SeqConfig", "Transformer", "GPT", "GPTConfig"]


class Encoder(nn.Module):
    """``n_layers`` :class:`EncoderBlock` and an optional final norm (needed with pre-LN).

    Shapes:
        x ``(B, S, d_model)``, mask broadcastable to ``(B, nh, S, S)`` -> ``(B, S, d_model)``.
    """

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int, *, final_norm: bool = True,
                 norm: str = "layernorm", **block_kw) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderBlock(d_model, n_heads, d_ff, norm=norm, **block_kw)
                                    for _ in range(n_layers))
        self.norm = build_norm(norm, d_model) if final_norm else nn.Identity()

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        for layer in self.layers:
            x = layer(x, mask)
        return self.norm(x)


class Decoder(nn.Module):
    """``n_layers`` :class:`DecoderBlock` and an optional final norm.

    Shapes:
        x ``(B, T, d_model)``, memory ``(B, S, d_model)`` -> ``(B, T, d_model)``.
    """

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int, *, final_norm: bool = True,
                 norm: str = "layernorm", **block_kw) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderBlock(d_model, n_heads, d_ff, norm=norm, **block_kw)
                                    for _ in range(n_layers))
        self.norm = build_norm(norm, d_model) if final_norm else nn.Identity()

    def forward(self, x: Tensor, memory: Tensor, *, tgt_mask: Tensor | None = None,
                memory_mask: Tensor | None = None, is_causal: bool = True) -> Tensor:
        for layer in self.layers:
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask, is_causal=is_causal)
        return self.norm(x)


@dataclass(frozen=True)
class Seq2SeqConfig:
    """Configuration of the encoder–decoder :class:`Transformer` (paper defaults: base model).

    ``pad_id`` marks padding in ``src`` and ``tgt_in``; targets use ``-100`` for positions to ignore.
    """

    src_vocab_size: int
    tgt_vocab_size: int
    d_model: int = 512
    n_heads: int = 8
    n_encoder_layers: int = 6
    n_decoder_layers: int = 6
    d_ff: int = 2048
    dropout: float = 0.1
    max_len: int = 512
    ffn: str = "relu"
    norm_first: bool = True
    pad_id: int = 0
    tie_embeddings: bool = True

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.d_model % 2:
            raise ValueError(f"sinusoidal positions need an even d_model, got {self.d_model}")
        if min(self.src_vocab_size, self.tgt_vocab_size, self.n_encoder_layers, self.n_decoder_layers,
               self.d_ff, self.max_len) < 1:
            raise ValueError("vocab sizes, layer counts, d_ff and max_len must all be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class Transformer(nn.Module):
    """The encoder–decoder Transformer: translate a source sequence into a target sequence.

    Shapes:
        src ``(B, S)``, tgt_in ``(B, T)`` (targets shifted right, starting with BOS) -> logits
        ``(B, T, tgt_vocab_size)``.
    """

    def __init__(self, config: Seq2SeqConfig) -> None:
        super().__init__()
        c = self.config = config
        self.src_embed = TokenEmbedding(c.src_vocab_size, c.d_model, scale=True)
        self.tgt_embed = TokenEmbedding(c.tgt_vocab_size, c.d_model, scale=True)
        self.pos = SinusoidalPositionalEncoding(c.max_len, c.d_model)
        self.drop = nn.Dropout(c.dropout)
        kw = dict(dropout=c.dropout, ffn=c.ffn, norm_first=c.norm_first, final_norm=c.norm_first)
        self.encoder = Encoder(c.n_encoder_layers, c.d_model, c.n_heads, c.d_ff, **kw)
        self.decoder = Decoder(c.n_decoder_layers, c.d_model, c.n_heads, c.d_ff, **kw)
        self.head = nn.Linear(c.d_model, c.tgt_vocab_size, bias=False)
        self.apply(_init_xavier)
        if c.tie_embeddings:
            self.head.weight = self.tgt_embed.weight
            nn.init.normal_(self.tgt_embed.weight, std=c.d_model ** -0.5)

    def _embed(self, embed: TokenEmbedding, idx: Tensor) -> Tensor:
        T = idx.size(1)
        if T > self.config.max_len:
            raise ValueError(f"sequence length {T} exceeds max_len={self.config.max_len}; "
                             f"raise max_len in Seq2SeqConfig or shorten the input")
        return self.drop(embed(idx) + self.pos(T))  # (B, T, C)

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor]:
        """Return the encoder output ``(B, S, C)`` and the source mask ``(B, 1, 1, S)``."""
        src_mask = (src != self.config.pad_id)[:, None, None, :]
        return self.encoder(self._embed(self.src_embed, src), src_mask), src_mask

    def decode(self, tgt_in: Tensor, memory: Tensor, src_mask: Tensor) -> Tensor:
        """Return logits ``(B, T, V)`` for every target position."""
        tgt_mask = (tgt_in != self.config.pad_id)[:, None, None, :]
        x = self.decoder(self._embed(self.tgt_embed, tgt_in), memory, tgt_mask=tgt_mask,
                         memory_mask=src_mask, is_causal=True)
        return self.head(x)

    def forward(self, src: Tensor, tgt_in: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        memory, src_mask = self.encode(src)
        logits = self.decode(tgt_in, memory, src_mask)
        loss = None
        if targets is not None:
            loss = token_cross_entropy(logits, targets)
        return logits, loss

    @torch.no_grad()
    def generate(self, src: Tensor, max_new_tokens: int, *, bos_id: int, eos_id: int | None = None) -> Tensor:
        """Greedy decoding: returns ``(B, <= max_new_tokens)`` tokens after BOS, padded after EOS."""
        memory, src_mask = self.encode(src)
        out = torch.full((src.size(0), 1), bos_id, dtype=torch.long, device=src.device)
        done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
        for _ in range(max_new_tokens):
            nxt = self.decode(out, memory, src_mask)[:, -1].argmax(-1)  # (B,)
            if eos_id is not None:
                nxt = nxt.masked_fill(done, self.config.pad_id)
                done |= nxt == eos_id
            out = torch.cat([out, nxt[:, None]], dim=1)
            if eos_id is not None and bool(done.all()):
                break
        return out[:, 1:]


def _init_xavier(m: nn.Module) -> None:
    # The original paper's models (and nn.Transformer) use Xavier-uniform linear layers.
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, TokenEmbedding):
        nn.init.normal_(m.weight, std=1.0 / math.sqrt(m.weight.size(1)))
