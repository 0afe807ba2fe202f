"""tfmcourse: a Transformer built piece by piece, with the course's training, data and grading tools.

The modules follow the chapters of the book:

=========== ==================================================================
ch01        :mod:`~tfmcourse.embedding`, :mod:`~tfmcourse.flow`
ch02        :mod:`~tfmcourse.norm`, :mod:`~tfmcourse.blocks`
ch03        :mod:`~tfmcourse.attention`
ch04        :mod:`~tfmcourse.multihead`
ch05        :mod:`~tfmcourse.ffn`
ch06        :mod:`~tfmcourse.models`, :mod:`~tfmcourse.gpt`, :mod:`~tfmcourse.optim`
ch07        :mod:`~tfmcourse.vit`
=========== ==================================================================
"""
__version__ = "0.1.0"

from .attention import causal_mask, combine_masks, padding_mask, scaled_dot_product_attention
from .blocks import DecoderBlock, EncoderBlock
from .embedding import (LearnedPositionalEmbedding, RotaryEmbedding, SinusoidalPositionalEncoding, TokenEmbedding,
                        apply_rotary, sinusoidal_encoding)
from .ffn import FeedForward, SwiGLU, build_ffn
from .flow import trace_flow
from .gpt import GPT, GPTConfig
from .models import Decoder, Encoder, Seq2SeqConfig, Transformer
from .multihead import KVCache, MultiHeadAttention, MultiHeadAttentionLoop
from .norm import LayerNorm, RMSNorm, build_norm
from .optim import make_optimizer, param_groups
from .utils import count_parameters, get_device, seed_everything
from .vit import PatchEmbedding, ViT, ViTConfig, patchify, unpatchify
