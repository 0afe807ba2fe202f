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

# Names are imported on first use (PEP 562), so that ``import tfmcourse`` and ``tfmcourse --help`` do not
# import torch; ``from tfmcourse import GPT`` works as usual.
_EXPORTS = {
    "attention": ["causal_mask", "combine_masks", "padding_mask", "scaled_dot_product_attention"],
    "blocks": ["DecoderBlock", "EncoderBlock"],
    "embedding": ["LearnedPositionalEmbedding", "RotaryEmbedding", "SinusoidalPositionalEncoding", "TokenEmbedding",
                  "apply_rotary", "sinusoidal_encoding"],
    "ffn": ["FeedForward", "SwiGLU", "build_ffn"],
    "flow": ["trace_flow"],
    "gpt": ["GPT", "GPTConfig"],
    "models": ["Decoder", "Encoder", "Seq2SeqConfig", "Transformer"],
    "multihead": ["KVCache", "MultiHeadAttention", "MultiHeadAttentionLoop"],
    "norm": ["LayerNorm", "RMSNorm", "build_norm"],
    "optim": ["make_optimizer", "param_groups"],
    "utils": ["count_parameters", "get_device", "seed_everything"],
    "vit": ["PatchEmbedding", "ViT", "ViTConfig", "patchify", "unpatchify"],
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name in _HOME:
        import importlib
        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module 'tfmcourse' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME})
