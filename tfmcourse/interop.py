"""Copy weights between PyTorch's built-in Transformer layers and tfmcourse's.

The layouts are the same, only the names differ (``in_proj_weight`` is our fused ``qkv.weight``,
``linear1`` our ``ffn.fc1`` …), so these loaders are renaming tables. They let the tests and the book
prove that tfmcourse computes exactly what ``nn.MultiheadAttention``, ``nn.TransformerEncoderLayer``,
``nn.TransformerDecoderLayer`` and ``nn.Transformer`` compute.

Masks: PyTorch's ``key_padding_mask`` and boolean ``attn_mask`` mean True = *ignore*; tfmcourse's mean
True = *may attend*. :func:`to_torch_mask` converts at this one boundary.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["to_torch_mask", "load_from_torch_mha", "load_from_torch_encoder_layer",
           "load_from_torch_decoder_layer", "load_from_torch_transformer"]

_MHA = {"in_proj_weight": "qkv.weight", "in_proj_bias": "qkv.bias",
        "out_proj.weight": "proj.weight", "out_proj.bias": "proj.bias"}
_FFN_NORM = {"linear1.weight": "ffn.fc1.weight", "linear1.bias": "ffn.fc1.bias",
             "linear2.weight": "ffn.fc2.weight", "linear2.bias": "ffn.fc2.bias",
             **{f"norm{i}.{p}": f"norm{i}.{p}" for i in (1, 2, 3) for p in ("weight", "bias")}}


def to_torch_mask(mask: Tensor) -> Tensor:
    """tfmcourse mask (True = may attend) -> PyTorch mask (True = masked out)."""
    return ~mask


def _copy(dst: nn.Module, src: nn.Module, table: dict[str, str]) -> None:
    dst_state = dst.state_dict()
    with torch.no_grad():
        for name, value in src.state_dict().items():
            if name not in table:
                raise KeyError(f"no tfmcourse counterpart for PyTorch parameter {name!r}")
            dst_state[table[name]].copy_(value)


def _prefixed(prefix: str, table: dict[str, str], into: str) -> dict[str, str]:
    return {f"{prefix}.{k}": f"{into}.{v}" for k, v in table.items()}


def load_from_torch_mha(mha: nn.Module, torch_mha: nn.MultiheadAttention) -> nn.Module:
    """Copy an ``nn.MultiheadAttention`` (``batch_first`` either way) into a :class:`MultiHeadAttention`."""
    _copy(mha, torch_mha, _MHA)
    return mha


def load_from_torch_encoder_layer(block: nn.Module, layer: nn.TransformerEncoderLayer) -> nn.Module:
    """Copy an ``nn.TransformerEncoderLayer`` into an :class:`EncoderBlock`."""
    table = {**_prefixed("self_attn", _MHA, "attn"), **_FFN_NORM}
    _copy(block, layer, {k: v for k, v in table.items() if not k.startswith("norm3")})
    return block


def load_from_torch_decoder_layer(block: nn.Module, layer: nn.TransformerDecoderLayer) -> nn.Module:
    """Copy an ``nn.TransformerDecoderLayer`` into a :class:`DecoderBlock`."""
    table = {**_prefixed("self_attn", _MHA, "self_attn"), **_prefixed("multihead_attn", _MHA, "cross_attn"),
             **_FFN_NORM}
    _copy(block, layer, table)
    return block


def load_from_torch_transformer(encoder: nn.Module, decoder: nn.Module, model: nn.Transformer) -> None:
    """Copy ``nn.Transformer``'s encoder and decoder stacks (and final norms) into ours."""
    for ours, theirs in zip(encoder.layers, model.encoder.layers):
        load_from_torch_encoder_layer(ours, theirs)
    for ours, theirs in zip(decoder.layers, model.decoder.layers):
        load_from_torch_decoder_layer(ours, theirs)
    encoder.norm.load_state_dict(model.encoder.norm.state_dict())
    decoder.norm.load_state_dict(model.decoder.norm.state_dict())
