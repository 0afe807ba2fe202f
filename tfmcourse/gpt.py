"""A decoder-only language model (GPT): token + position embeddings, causal pre-LN blocks, LM head.

One config covers the GPT-2 recipe (learned positions, LayerNorm, GELU, biases, tied embeddings) and
the LLaMA-style one (RoPE, RMSNorm, SwiGLU, no biases): see :meth:`GPTConfig.gpt2` and
:meth:`GPTConfig.llama`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .blocks import EncoderBlock
from .embedding import LearnedPositionalEmbedding, RotaryEmbedding, SinusoidalPositionalEncoding, TokenEmbedding
from .multihead import KVCache
from .norm import build_norm
from .optim import make_optimizer
from .utils import token_cross_entropy

__all__ = ["GPTConfig", "GPT"]

POSITIONS = ("learned", "sinusoidal", "rope", "none")
NORMS = ("layernorm", "rmsnorm")
FFNS = ("relu", "gelu", "swiglu")


@dataclass(frozen=True)
class GPTConfig:
    """Sizes and recipe of a :class:`GPT`. Defaults are GPT-2 small (124M) with a padded vocabulary.

    ``d_ff=None`` means ``4 * d_model`` (or ``8/3 * d_model`` rounded to 64 for SwiGLU, which keeps the
    parameter count of a 4x MLP).
    """

    vocab_size: int = 50304
    block_size: int = 1024
    n_layers: int = 12
    n_heads: int = 12
    d_model: int = 768
    d_ff: int | None = None
    dropout: float = 0.0
    bias: bool = True
    positions: str = "learned"
    norm: str = "layernorm"
    ffn: str = "gelu"
    tie_weights: bool = True
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads}); "
                             f"choose n_heads among the divisors of d_model")
        for name, allowed in (("positions", POSITIONS), ("norm", NORMS), ("ffn", FFNS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.positions in ("rope", "sinusoidal") and (self.d_model // self.n_heads if self.positions == "rope"
                                                          else self.d_model) % 2:
            raise ValueError(f"{self.positions} positions need an even head size / d_model")
        for name in ("vocab_size", "block_size", "n_layers", "n_heads", "d_model"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def hidden(self) -> int:
        if self.d_ff is not None:
            return self.d_ff
        return 64 * math.ceil(8 * self.d_model / 3 / 64) if self.ffn == "swiglu" else 4 * self.d_model

    @classmethod
    def gpt2(cls, **kw) -> GPTConfig:
        return cls(**{**dict(positions="learned", norm="layernorm", ffn="gelu", bias=True), **kw})

    @classmethod
    def llama(cls, **kw) -> GPTConfig:
        return cls(**{**dict(positions="rope", norm="rmsnorm", ffn="swiglu", bias=False), **kw})


class GPT(nn.Module):
    """Decoder-only Transformer language model.

    Shapes:
        idx ``(B, T)`` token ids with ``T <= block_size`` -> logits ``(B, T, vocab_size)``; loss is the
        mean next-token cross-entropy over targets ``(B, T)`` (``-100`` = ignore).
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        c = self.config = config
        self.tok_emb = TokenEmbedding(c.vocab_size, c.d_model)
        self.pos_emb: nn.Module | None = None
        if c.positions == "learned":
            self.pos_emb = LearnedPositionalEmbedding(c.block_size, c.d_model)
        elif c.positions == "sinusoidal":
            self.pos_emb = SinusoidalPositionalEncoding(c.block_size, c.d_model)
        # One rotary table shared by every layer (it has no parameters).
        self.rope = RotaryEmbedding(c.d_model // c.n_heads, c.block_size, base=c.rope_base) \
            if c.positions == "rope" else None
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(c.d_model, c.n_heads, c.hidden, dropout=c.dropout, ffn=c.ffn, norm=c.norm,
                         norm_first=True, bias=c.bias)
            for _ in range(c.n_layers))
        self.norm = build_norm(c.norm, c.d_model, bias=c.bias)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.apply(self._init_weights)
        # GPT-2: scale the projections that write into the residual stream by 1/sqrt(2 * n_layers), so
        # the stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "ffn.fc2.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layers))
        if c.tie_weights:
            self.lm_head.weight = self.tok_emb.weight  # one matrix reads and writes tokens

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.Embedding, TokenEmbedding, LearnedPositionalEmbedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count; by default without position embeddings (as GPT-2 reports it)."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and isinstance(self.pos_emb, LearnedPositionalEmbedding):
            n -= self.pos_emb.weight.numel()
        return n

    def forward_features(self, idx: Tensor, caches: list[KVCache] | None = None) -> Tensor:
        """Hidden states after the final norm, ``(B, T, d_model)``."""
        B, T = idx.shape
        offset = len(caches[0]) if caches else 0
        if offset + T > self.config.block_size:
            raise ValueError(f"sequence length {offset + T} exceeds block_size={self.config.block_size}; "
                             f"crop the input to the last {self.config.block_size} tokens or raise block_size")
        x = self.tok_emb(idx)  # (B, T, C)
        if self.pos_emb is not None:
            x = x + self.pos_emb(T, offset)  # (T, C) broadcast over the batch
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, is_causal=True, cache=caches[i] if caches else None, rope=self.rope)
        return self.norm(x)

    def forward(self, idx: Tensor, targets: Tensor | None = None,
                caches: list[KVCache] | None = None) -> tuple[Tensor, Tensor | None]:
        x = self.forward_features(idx, caches)
        logits = self.lm_head(x)  # (B, T, vocab)
        loss = None
        if targets is not None:
            loss = token_cross_entropy(logits, targets)
        return logits, loss

    @torch.no_grad()
    def generate(self, idx: Tensor, max_new_tokens: int, *, temperature: float = 1.0, top_k: int | None = None,
                 use_cache: bool = True, generator: torch.Generator | None = None) -> Tensor:
        """Append ``max_new_tokens`` sampled tokens to ``idx`` ``(B, T)``.

        Args:
            temperature: divide logits by this; ``0`` means greedy (argmax).
            top_k: sample only among the ``k`` most likely tokens.
            use_cache: reuse past keys/values (one token per step) while the context fits in
                ``block_size``; past that, fall back to re-running the cropped window.
            generator: random generator for reproducible sampling.
        """
        caches = [KVCache() for _ in self.blocks] if use_cache else None
        nxt_input = idx
        for _ in range(max_new_tokens):
            if caches is not None and idx.size(1) > self.config.block_size:
                caches = None  # the window now slides: past keys would sit at wrong positions
            if caches is None:
                nxt_input = idx[:, -self.config.block_size:]
            logits, _ = self(nxt_input, caches=caches)
            logits = logits[:, -1].float()  # (B, V)
            if temperature == 0:
                nxt = logits.argmax(-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
            nxt_input = nxt
        return idx

    def configure_optimizers(self, *, lr: float = 6e-4, weight_decay: float = 0.1,
                             betas: tuple[float, float] = (0.9, 0.95)) -> torch.optim.AdamW:
        """AdamW with weight decay on matrices only (fused on CUDA); see :func:`tfmcourse.optim.make_optimizer`."""
        return make_optimizer(self, lr=lr, weight_decay=weight_decay, betas=betas)
