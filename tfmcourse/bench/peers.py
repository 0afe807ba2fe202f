"""The peers ``tfmcourse bench`` measures beside the course's models, built to the same sizes.

PyTorch's own ``nn.TransformerEncoderLayer`` is always there; Hugging Face's GPT-2 and timm's ViT-B/16
are used when installed (random initialisation: nothing is downloaded).

Every peer starts at the initialisation scale of the tfmcourse model it is compared with (Hugging Face
and timm already use it). PyTorch's defaults would not be a fair start: ``nn.Embedding`` draws from
N(0, 1), which makes the logits of the tied GPT 50 times too large (a step-0 loss near 145 instead of
ln V), and the huge gradients that follow go denormal, which x86 CPUs compute very slowly; the bench
would then time the initialisation, not the code. The bench prints every entry's step-0 loss so an
unhealthy start shows.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..gpt import GPTConfig
from ..utils import token_cross_entropy
from ..vit import ViTConfig

__all__ = ["TorchGPT", "TorchViT", "HFGPT2", "TimmViT", "installed", "init_like_tfmcourse"]


def init_like_tfmcourse(model: nn.Module, *, std: float = 0.02, truncated: bool = False,
                        residual_layers: int | None = None) -> None:
    """tfmcourse's initialisation for a model built from PyTorch's layers: linear weights (and the fused
    ``in_proj_weight`` of ``nn.MultiheadAttention``) and embeddings from N(0, std) (truncated at 2 std for
    the ViT, as timm does), zero biases; with ``residual_layers=L`` the projections that write into the
    residual stream (``out_proj``, ``linear2``) get ``std / sqrt(2 L)`` as in GPT-2."""
    normal = nn.init.trunc_normal_ if truncated else nn.init.normal_
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            scaled = residual_layers and name.endswith(("out_proj", "linear2"))
            normal(m.weight, std=std / math.sqrt(2 * residual_layers) if scaled else std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            normal(m.weight, std=std)
        elif isinstance(m, nn.MultiheadAttention):
            normal(m.in_proj_weight, std=std)
            if m.in_proj_bias is not None:
                nn.init.zeros_(m.in_proj_bias)


class TorchGPT(nn.Module):
    """A GPT built from ``nn.TransformerEncoderLayer`` (pre-LN, GELU, causal): PyTorch's own layers."""

    def __init__(self, c: GPTConfig) -> None:
        super().__init__()
        self.tok = nn.Embedding(c.vocab_size, c.d_model)
        self.pos = nn.Embedding(c.block_size, c.d_model)
        layer = nn.TransformerEncoderLayer(c.d_model, c.n_heads, c.hidden, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, c.n_layers, norm=nn.LayerNorm(c.d_model),
                                             enable_nested_tensor=False)
        self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        init_like_tfmcourse(self, residual_layers=c.n_layers)
        self.head.weight = self.tok.weight

    def forward(self, idx: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        T = idx.size(1)
        x = self.tok(idx) + self.pos.weight[:T]
        mask = nn.Transformer.generate_square_subsequent_mask(T, device=idx.device, dtype=x.dtype)
        x = self.encoder(x, mask=mask, is_causal=True)
        logits = self.head(x)
        return logits, token_cross_entropy(logits, targets)


class TorchViT(nn.Module):
    """A ViT built from ``nn.TransformerEncoderLayer``."""

    def __init__(self, c: ViTConfig) -> None:
        super().__init__()
        self.patch = nn.Conv2d(c.in_chans, c.d_model, c.patch_size, c.patch_size)
        n = (c.image_size // c.patch_size) ** 2 + 1
        self.cls = nn.Parameter(torch.zeros(1, 1, c.d_model))
        self.pos = nn.Parameter(torch.zeros(1, n, c.d_model))
        layer = nn.TransformerEncoderLayer(c.d_model, c.n_heads, c.hidden, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True, layer_norm_eps=1e-6)
        self.encoder = nn.TransformerEncoder(layer, c.n_layers, norm=nn.LayerNorm(c.d_model, eps=1e-6),
                                             enable_nested_tensor=False)
        self.head = nn.Linear(c.d_model, c.n_classes)
        init_like_tfmcourse(self, truncated=True)
        nn.init.normal_(self.pos, std=0.02)  # tfmcourse's ViT: learned positions at 0.02, CLS token near 0
        nn.init.normal_(self.cls, std=1e-6)

    def forward(self, x: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.size(0), -1, -1), x], 1) + self.pos
        logits = self.head(self.encoder(x)[:, 0])
        return logits, F.cross_entropy(logits.float(), targets)


class HFGPT2(nn.Module):
    """Hugging Face ``GPT2LMHeadModel`` with SDPA attention, randomly initialised (nothing is downloaded).

    ``activation``: ``"gelu_new"`` (GPT-2's default, a tanh GELU composed of Python-level ops) or
    ``"gelu_pytorch_tanh"`` (the same function as one fused kernel).
    """

    def __init__(self, c: GPTConfig, activation: str = "gelu_new") -> None:
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel
        cfg = GPT2Config(vocab_size=c.vocab_size, n_positions=c.block_size, n_embd=c.d_model, n_layer=c.n_layers,
                         n_head=c.n_heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                         activation_function=activation,
                         bos_token_id=c.vocab_size - 1, eos_token_id=c.vocab_size - 1, attn_implementation="sdpa")
        self.model = GPT2LMHeadModel(cfg)
        if self.model.config._attn_implementation != "sdpa":  # a silent fallback would make the peer slow
            raise RuntimeError(f"transformers {self.model.config._attn_implementation!r} attention, not 'sdpa'")

    def forward(self, idx: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.model(input_ids=idx).logits
        return logits, token_cross_entropy(logits, targets)


class TimmViT(nn.Module):
    """timm's ``vit_base_patch16_224`` at the given sizes, randomly initialised (nothing is downloaded)."""

    def __init__(self, c: ViTConfig) -> None:
        super().__init__()
        import timm
        self.model = timm.create_model("vit_base_patch16_224", pretrained=False, img_size=c.image_size,
                                       patch_size=c.patch_size, embed_dim=c.d_model, depth=c.n_layers,
                                       num_heads=c.n_heads, num_classes=c.n_classes, in_chans=c.in_chans)

    def forward(self, x: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.model(x)
        return logits, F.cross_entropy(logits.float(), targets)


def installed(module: str) -> bool:
    """Whether ``module`` imports (a peer is measured only when its library is installed)."""
    try:
        __import__(module)
        return True
    except Exception:
        return False
