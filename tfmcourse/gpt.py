"""A decoder-only language model (GPT): token + position embeddings, causal pre-LN blocks, LM head.

One config covers the GPT-2 recipe (learned positions, LayerNorm, GELU, biases, tied embeddings) and
the LLaMA-style one (RoPE, RMSNorm, SwiGLU, no biases, grouped-query attention): see
:meth:`GPTConfig.gpt2` and :meth:`GPTConfig.llama`. :meth:`GPT.from_hf` loads the weights of a Hugging
Face GPT-2 or LLaMA checkpoint that is on disk (see :mod:`tfmcourse.pretrained`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .blocks import EncoderBlock
from .embedding import LearnedPositionalEmbedding, RotaryEmbedding, SinusoidalPositionalEncoding, TokenEmbedding
from .multihead import GroupedQKV, KVCache
from .norm import build_norm
from .optim import make_optimizer
from .utils import token_cross_entropy

__all__ = ["GPTConfig", "GPT"]

POSITIONS = ("learned", "sinusoidal", "rope", "none")
NORMS = ("layernorm", "rmsnorm")
FFNS = ("relu", "gelu", "gelu_tanh", "swiglu")


@dataclass(frozen=True)
class GPTConfig:
    """Sizes and recipe of a :class:`GPT`. Defaults are GPT-2 small (124M) with a padded vocabulary.

    ``d_ff=None`` means ``4 * d_model`` (or, for SwiGLU, ``8/3 * d_model`` rounded up to a multiple of 256 as
    LLaMA does, which keeps about the parameter count of a 4x MLP). ``n_kv_heads`` < ``n_heads`` gives grouped-query attention (``None``:
    as many key/value heads as query heads). ``norm_eps`` is the epsilon of every norm (GPT-2 and
    LLaMA 2/3: 1e-5; LLaMA 1: 1e-6). ``rope_interleaved`` pairs neighbouring features in RoPE (Meta's
    original LLaMA layout) instead of the two halves (Hugging Face checkpoints).
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
    n_kv_heads: int | None = None
    norm_eps: float = 1e-5
    rope_interleaved: bool = False

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
        if self.n_kv_heads is not None and not (1 <= self.n_kv_heads <= self.n_heads
                                                and self.n_heads % self.n_kv_heads == 0):
            raise ValueError(f"n_kv_heads ({self.n_kv_heads}) must divide n_heads ({self.n_heads})")
        if self.norm_eps <= 0:
            raise ValueError(f"norm_eps must be positive, got {self.norm_eps}")

    @property
    def hidden(self) -> int:
        if self.d_ff is not None:
            return self.d_ff
        if self.ffn == "swiglu":  # LLaMA's rule (multiple_of=256): d_model 4096 -> 11008, as in LLaMA-7B
            return 256 * math.ceil(8 * self.d_model / 3 / 256)
        return 4 * self.d_model

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
        self.rope = RotaryEmbedding(c.d_model // c.n_heads, c.block_size, base=c.rope_base,
                                    interleaved=c.rope_interleaved) if c.positions == "rope" else None
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            EncoderBlock(c.d_model, c.n_heads, c.hidden, dropout=c.dropout, ffn=c.ffn, norm=c.norm,
                         norm_first=True, bias=c.bias, eps=c.norm_eps)
            for _ in range(c.n_layers))
        if c.n_kv_heads not in (None, c.n_heads):  # GQA: a narrower qkv in front of the same attention
            for block in self.blocks:
                block.attn.qkv = GroupedQKV(c.d_model, c.n_heads, c.n_kv_heads, bias=c.bias)
        self.norm = build_norm(c.norm, c.d_model, eps=c.norm_eps, bias=c.bias)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.apply(self._init_weights)
        # GPT-2: scale the projections that write into the residual stream by 1/sqrt(2 * n_layers), so
        # the stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith(("attn.proj.weight", "ffn.fc2.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layers))
        if c.tie_weights:
            self.lm_head.weight = self.tok_emb.weight  # one matrix reads and writes tokens
        self.register_load_state_dict_pre_hook(GPT._check_tied)

    @staticmethod
    def _check_tied(module: GPT, state_dict: dict, prefix: str, *args) -> None:
        """Loading into tied weights: one copy of the shared matrix is enough, two that differ are an error
        (without this check the one loaded last would silently win)."""
        if not module.config.tie_weights:
            return
        emb, head = prefix + "tok_emb.weight", prefix + "lm_head.weight"
        if emb in state_dict and head in state_dict:
            a, b = state_dict[emb], state_dict[head]
            if a.shape != b.shape or not torch.equal(a, b.to(a.device, a.dtype)):
                raise ValueError(f"the state dict holds different {emb!r} and {head!r}, but this GPT ties them "
                                 f"(tie_weights=True): load it into a GPT with tie_weights=False, or keep one")
        elif emb in state_dict or head in state_dict:
            state_dict.setdefault(emb, state_dict.get(head))
            state_dict.setdefault(head, state_dict[emb])

    @classmethod
    def from_hf(cls, source, **overrides) -> GPT:
        """A GPT holding the weights of a Hugging Face GPT-2 or LLaMA checkpoint (nothing is downloaded).

        ``source`` is a local folder (``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``),
        a ``transformers`` model, or a ``(config, state_dict)`` pair; ``overrides`` replace
        :class:`GPTConfig` fields (``block_size=…``, ``dtype=torch.bfloat16``). See
        :func:`tfmcourse.pretrained.gpt_from_hf`.
        """
        from .pretrained import gpt_from_hf
        return gpt_from_hf(source, **overrides)

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

    def forward_features(self, idx: Tensor, caches: list[KVCache] | None = None,
                         positions: Tensor | None = None) -> Tensor:
        """Hidden states after the final norm, ``(B, T, d_model)``.

        ``positions`` ``(T,)`` or ``(B, T)`` gives each token's position explicitly (default: after the
        cached tokens, ``len(cache) …``); attention stays causal in the order of the tokens.
        """
        B, T = idx.shape
        offset = len(caches[0]) if caches else 0
        last = offset + T if positions is None else int(positions.max()) + 1 if positions.numel() else 0
        if last > self.config.block_size:
            raise ValueError(f"position {last - 1} does not fit block_size={self.config.block_size}; "
                             f"crop the input to the last {self.config.block_size} tokens or raise block_size")
        x = self.tok_emb(idx)  # (B, T, C)
        if self.pos_emb is not None:
            # (T, C) broadcast over the batch, or each token's own row of the table
            x = x + (self.pos_emb(T, offset) if positions is None else self.pos_emb(last)[positions])
        x = self.drop(x)
        rope = self.rope.at(positions) if self.rope is not None and positions is not None else self.rope
        for i, block in enumerate(self.blocks):
            x = block(x, is_causal=True, cache=caches[i] if caches else None, rope=rope)
        return self.norm(x)

    def forward(self, idx: Tensor, targets: Tensor | None = None, caches: list[KVCache] | None = None,
                positions: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        x = self.forward_features(idx, caches, positions)
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
