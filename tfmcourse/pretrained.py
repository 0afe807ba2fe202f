"""Pretrained weights from checkpoints on disk: Hugging Face GPT-2 and LLaMA into :class:`GPT`, timm ViTs into
:class:`ViT`.

The architectures are the same; only names and layouts differ, so loading is a renaming table plus a
few reshapes (GPT-2 stores its linear layers transposed, as ``Conv1D``; LLaMA keeps Q, K, V and the two
SwiGLU inputs as separate matrices, which tfmcourse stacks). Nothing is downloaded: point these
functions at a folder you already have (``config.json`` plus ``model.safetensors``, sharded or not,
or ``pytorch_model.bin``), e.g. one written by ``save_pretrained`` or copied from a model hub by hand.
Reading ``.safetensors`` needs the ``safetensors`` package; nothing here needs ``transformers`` or ``timm``.

Loading is strict: every weight of the checkpoint must find its place and every parameter of the model
must be filled, and a checkpoint whose tied matrices (token embedding and LM head) disagree is refused.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from . import gpt as gpt_module
from . import vit as vit_module

__all__ = ["read_checkpoint_dir", "load_weights", "gpt_config_from_hf", "gpt_state_dict_from_hf", "gpt_from_hf",
           "vit_config_from_timm", "vit_from_timm", "HFTokenizer"]

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
_GELU_TANH = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")  # Hugging Face's names of the tanh GELU


# ------------------------------------------------------------------------------------------ reading
def load_weights(path: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of one weight file (``.safetensors``, ``.bin``/``.pt``) or of a sharded checkpoint's
    ``*.index.json`` (all its shards), on the CPU."""
    path = Path(path).expanduser()
    if path.name.endswith(".index.json"):
        shards = sorted(set(json.loads(path.read_text())["weight_map"].values()))
        return {k: v for shard in shards for k, v in load_weights(path.parent / shard).items()}
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ImportError(f"reading {path.name} needs the safetensors package: pip install safetensors "
                              f"(it does not touch torch)") from None
        return load_file(str(path), device="cpu")
    return torch.load(path, map_location="cpu", weights_only=True)


def read_checkpoint_dir(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """``(config, state_dict)`` of a local checkpoint folder: ``config.json`` and the first weight file of
    :data:`WEIGHT_FILES` that is there."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder; pass the folder that holds config.json and the weights")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} has no config.json")
    config = json.loads((path / "config.json").read_text())
    for name in WEIGHT_FILES:
        if (path / name).is_file():
            return config, load_weights(path / name)
    raise FileNotFoundError(f"{path} has none of {', '.join(WEIGHT_FILES)}")


def _config_and_weights(source: Any) -> tuple[dict[str, Any] | None, Mapping[str, Tensor]]:
    """A folder, a ``(config, state_dict)`` pair, a bare state dict, or a model with ``.config``."""
    if isinstance(source, (str, os.PathLike)):
        return read_checkpoint_dir(source)
    if isinstance(source, tuple) and len(source) == 2:
        config, sd = source
        return _as_dict(config), sd
    if isinstance(source, Mapping):
        return None, source
    if isinstance(source, torch.nn.Module):
        return _as_dict(getattr(source, "config", None)), source.state_dict()
    raise TypeError(f"expected a folder, a state dict, a (config, state_dict) pair or a model, got {type(source)}")


def _as_dict(config: Any) -> dict[str, Any] | None:
    if config is None or isinstance(config, Mapping):
        return None if config is None else dict(config)
    if hasattr(config, "to_dict"):  # a transformers PretrainedConfig
        return config.to_dict()
    return dict(vars(config))


def _load_strict(model: torch.nn.Module, sd: dict[str, Tensor], unused: list[str], what: str) -> None:
    if unused:
        raise ValueError(f"{what}: {len(unused)} weights have no place in tfmcourse's model, e.g. "
                         f"{', '.join(sorted(unused)[:5])} (a variant this loader does not support)")
    missing, unexpected = model.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValueError(f"{what}: the model's parameters and the checkpoint do not match; missing "
                         f"{sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]}")


# ------------------------------------------------------------------------------------------ GPT-2 / LLaMA
def _infer_hf_config(sd: Mapping[str, Tensor], overrides: dict[str, Any]) -> dict[str, Any]:
    """A Hugging Face-style config for a bare state dict, from its shapes (head counts are not in the
    shapes: GPT-2 has 64-dimensional heads in every size; for LLaMA pass ``n_heads=``)."""
    names = {k.removeprefix("transformer.").removeprefix("model."): v for k, v in sd.items()}
    if "wte.weight" in names:
        V, C = names["wte.weight"].shape
        return dict(model_type="gpt2", vocab_size=V, n_embd=C, n_positions=names["wpe.weight"].shape[0],
                    n_layer=1 + max(int(k.split(".")[1]) for k in names if k.startswith("h.")),
                    n_head=overrides.get("n_heads", C // 64), n_inner=names["h.0.mlp.c_fc.weight"].shape[1],
                    tie_word_embeddings=_tied(names, "wte.weight"))
    if "embed_tokens.weight" in names:
        if "n_heads" not in overrides:
            raise ValueError("a LLaMA state dict does not say how many heads it has: pass n_heads=, or the "
                             "checkpoint's config as from_hf((config, state_dict))")
        V, C = names["embed_tokens.weight"].shape
        H = overrides["n_heads"]
        return dict(model_type="llama", vocab_size=V, hidden_size=C, num_attention_heads=H,
                    num_key_value_heads=names["layers.0.self_attn.k_proj.weight"].shape[0] // (C // H),
                    num_hidden_layers=1 + max(int(k.split(".")[1]) for k in names if k.startswith("layers.")),
                    intermediate_size=names["layers.0.mlp.gate_proj.weight"].shape[0],
                    max_position_embeddings=overrides.get("block_size", 2048),
                    tie_word_embeddings=_tied(names, "embed_tokens.weight"))
    raise ValueError("not a GPT-2 (wte.weight …) or LLaMA (embed_tokens.weight …) state dict")


def _tied(names: Mapping[str, Tensor], emb: str) -> bool:
    head = names.get("lm_head.weight")
    return head is None or (head.shape == names[emb].shape and torch.equal(head, names[emb]))


def gpt_config_from_hf(config: Mapping[str, Any], **overrides: Any) -> gpt_module.GPTConfig:
    """The :class:`GPTConfig` of a Hugging Face ``gpt2`` or ``llama`` config (``config.json`` as a dict).

    Raises ``ValueError`` for settings tfmcourse's GPT does not compute exactly (e.g. rope scaling,
    attention biases in LLaMA, GPT-2's per-layer attention scaling).
    """
    c, kind = dict(config), config.get("model_type")
    if kind == "gpt2":
        act = c.get("activation_function", "gelu_new")
        if act not in (*_GELU_TANH, "gelu", "relu"):
            raise ValueError(f"GPT-2 activation {act!r} is not one of tfmcourse's (gelu, gelu_tanh, relu)")
        for flag, ok in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                         ("add_cross_attention", False)):
            if c.get(flag, ok) != ok:
                raise ValueError(f"GPT-2 with {flag}={c[flag]} is not supported")
        base = dict(vocab_size=c["vocab_size"], block_size=c.get("n_positions", 1024), n_layers=c["n_layer"],
                    n_heads=c["n_head"], d_model=c["n_embd"], d_ff=c.get("n_inner") or 4 * c["n_embd"],
                    ffn="gelu_tanh" if act in _GELU_TANH else act, positions="learned", norm="layernorm",
                    bias=True, tie_weights=c.get("tie_word_embeddings", True),
                    norm_eps=c.get("layer_norm_epsilon", 1e-5))
    elif kind == "llama":
        if c.get("hidden_act", "silu") != "silu":
            raise ValueError(f"LLaMA with hidden_act={c['hidden_act']!r} is not supported (SwiGLU uses silu)")
        if c.get("attention_bias") or c.get("mlp_bias"):
            raise ValueError("LLaMA with attention_bias or mlp_bias is not supported (tfmcourse's LLaMA recipe "
                             "has no biases)")
        rope = c.get("rope_parameters") or c.get("rope_scaling") or {}
        if rope.get("rope_type", rope.get("type", "default")) != "default":
            raise ValueError(f"LLaMA rope scaling {rope!r} is not supported; only the plain RoPE of LLaMA 1/2")
        heads, C = c["num_attention_heads"], c["hidden_size"]
        if c.get("head_dim") not in (None, C // heads):
            raise ValueError(f"head_dim={c['head_dim']} differs from hidden_size / num_attention_heads = {C // heads}")
        base = dict(vocab_size=c["vocab_size"], block_size=c.get("max_position_embeddings", 2048),
                    n_layers=c["num_hidden_layers"], n_heads=heads, d_model=C, d_ff=c["intermediate_size"],
                    n_kv_heads=c.get("num_key_value_heads") or heads, positions="rope", norm="rmsnorm",
                    ffn="swiglu", bias=False, tie_weights=c.get("tie_word_embeddings", False),
                    norm_eps=c.get("rms_norm_eps", 1e-6),
                    rope_base=rope.get("rope_theta", c.get("rope_theta", 10000.0)))
    else:
        raise ValueError(f"model_type {kind!r}: GPT.from_hf reads gpt2 and llama checkpoints")
    return gpt_module.GPTConfig(**{**base, **overrides})


def gpt_state_dict_from_hf(config: Mapping[str, Any], sd: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """Rename (and for GPT-2 transpose, for LLaMA stack) a Hugging Face state dict into :class:`GPT`'s
    names; returns ``(state_dict, names of the checkpoint's weights that found no place)``."""
    src = {k.removeprefix("transformer.").removeprefix("model."): v for k, v in sd.items()}
    out: dict[str, Tensor] = {}
    used: set[str] = set()

    def take(name: str) -> Tensor:
        used.add(name)
        return src[name]

    if config["model_type"] == "gpt2":
        out["tok_emb.weight"] = take("wte.weight")
        out["pos_emb.weight"] = take("wpe.weight")
        conv1d = {"attn.c_attn": "attn.qkv", "attn.c_proj": "attn.proj", "mlp.c_fc": "ffn.fc1",
                  "mlp.c_proj": "ffn.fc2"}  # Conv1D keeps (in, out): transpose to nn.Linear's (out, in)
        for i in range(config["n_layer"]):
            for theirs, ours in conv1d.items():
                out[f"blocks.{i}.{ours}.weight"] = take(f"h.{i}.{theirs}.weight").t()
                out[f"blocks.{i}.{ours}.bias"] = take(f"h.{i}.{theirs}.bias")
            for theirs, ours in (("ln_1", "norm1"), ("ln_2", "norm2")):
                for p in ("weight", "bias"):
                    out[f"blocks.{i}.{ours}.{p}"] = take(f"h.{i}.{theirs}.{p}")
            used.update(k for k in (f"h.{i}.attn.bias", f"h.{i}.attn.masked_bias") if k in src)  # causal-mask buffers
        out["norm.weight"], out["norm.bias"] = take("ln_f.weight"), take("ln_f.bias")
    else:
        out["tok_emb.weight"] = take("embed_tokens.weight")
        for i in range(config["num_hidden_layers"]):
            p = f"layers.{i}."
            out[f"blocks.{i}.attn.qkv.weight"] = torch.cat([take(p + f"self_attn.{n}_proj.weight") for n in "qkv"])
            out[f"blocks.{i}.attn.proj.weight"] = take(p + "self_attn.o_proj.weight")
            out[f"blocks.{i}.ffn.fc1.weight"] = torch.cat([take(p + f"mlp.{n}_proj.weight") for n in ("gate", "up")])
            out[f"blocks.{i}.ffn.fc2.weight"] = take(p + "mlp.down_proj.weight")
            out[f"blocks.{i}.norm1.weight"] = take(p + "input_layernorm.weight")
            out[f"blocks.{i}.norm2.weight"] = take(p + "post_attention_layernorm.weight")
            used.update(k for k in (p + "self_attn.rotary_emb.inv_freq",) if k in src)  # a buffer, recomputed
        out["norm.weight"] = take("norm.weight")
        used.update(k for k in ("rotary_emb.inv_freq",) if k in src)
    if "lm_head.weight" in src:  # absent when tied (save_pretrained keeps one copy)
        out["lm_head.weight"] = take("lm_head.weight")
    return out, [k for k in src if k not in used]


def gpt_from_hf(source: Any, *, dtype: torch.dtype | None = None, **overrides: Any) -> gpt_module.GPT:
    """A :class:`GPT` with the weights of a Hugging Face GPT-2 or LLaMA checkpoint.

    Args:
        source: a local folder (``config.json`` + weights), a ``transformers`` model, a
            ``(config, state_dict)`` pair, or a bare state dict (sizes read from the shapes; for LLaMA
            pass ``n_heads=``).
        dtype: cast the model to this dtype after loading (default: float32).
        overrides: :class:`GPTConfig` fields to change, e.g. ``block_size=256`` for a smaller RoPE table,
            ``ffn="gelu"`` to run GPT-2 with the exact GELU instead of its tanh approximation.
    """
    config, sd = _config_and_weights(source)
    config = config if config is not None and "model_type" in config else _infer_hf_config(sd, overrides)
    gc = gpt_config_from_hf(config, **overrides)
    mapped, unused = gpt_state_dict_from_hf(config, sd)
    if not gc.tie_weights and "lm_head.weight" not in mapped:
        raise ValueError("the checkpoint has no lm_head.weight but its config does not tie it to the embedding")
    model = gpt_module.GPT(gc)
    _load_strict(model, mapped, unused, "GPT.from_hf")
    return model.to(dtype) if dtype is not None else model


# ------------------------------------------------------------------------------------------ timm ViT
_TIMM_HEADS = {"tiny": 3, "small": 6, "base": 12, "large": 16, "huge": 16}  # timm's vit_{size}_patch…


def vit_config_from_timm(config: Mapping[str, Any] | None, sd: Mapping[str, Tensor], **overrides: Any
                         ) -> vit_module.ViTConfig:
    """The :class:`ViTConfig` of a timm ``VisionTransformer``: sizes from the state dict's shapes, the head
    count from ``config`` (``model_args.num_heads``, or the ``architecture`` name) or ``n_heads=``.

    Raises ``ValueError`` for variants tfmcourse's ViT does not compute (layer scale, register tokens,
    q/k norms, a pooled-feature norm, positions without the class token).
    """
    config = dict(config or {})
    args = {**(config.get("pretrained_cfg") or {}).get("model_args", {}), **(config.get("model_args") or {})}
    bad = sorted({k.split(".")[-2] if k.startswith("blocks.") else k.split(".")[0] for k in sd
                  if any(s in k for s in (".ls1.", ".ls2.", "q_norm", "k_norm", "reg_token", "fc_norm.", "norm_pre."))})
    if bad:
        raise ValueError(f"timm ViT with {', '.join(bad)}: a variant tfmcourse's ViT does not compute")
    D, C, P, _ = sd["patch_embed.proj.weight"].shape
    cls_token = "cls_token" in sd
    n_pos = sd["pos_embed"].shape[1] - cls_token
    side = math.isqrt(n_pos)
    if side * side != n_pos:
        raise ValueError(f"pos_embed has {n_pos} patch positions, not a square grid (or positions without the "
                         f"class token, which tfmcourse's ViT does not support)")
    pool = config.get("global_pool", args.get("global_pool", "token" if cls_token else "avg"))
    if (pool == "token") != cls_token or pool not in ("token", "avg"):
        raise ValueError(f"global_pool={pool!r} with class token {cls_token}: tfmcourse pools the class token, "
                         f"or averages all tokens of a ViT without one")
    heads = overrides.pop("n_heads", None) or args.get("num_heads")
    if heads is None:
        arch = str(config.get("architecture", ""))
        heads = next((h for size, h in _TIMM_HEADS.items() if arch.startswith(f"vit_{size}_")), None)
    if heads is None:
        raise ValueError("the head count is not in the state dict's shapes: pass n_heads= (or a config with "
                         "model_args.num_heads or a vit_{tiny,small,base,large,huge}_… architecture)")
    if "head.weight" not in sd:
        raise ValueError("the checkpoint has no classifier head (num_classes=0); tfmcourse's ViT always has one")
    base = dict(image_size=side * P, patch_size=P, in_chans=C, n_classes=sd["head.weight"].shape[0], d_model=D,
                n_layers=1 + max(int(k.split(".")[1]) for k in sd if k.startswith("blocks.")), n_heads=heads,
                d_ff=sd["blocks.0.mlp.fc1.weight"].shape[0], pool="cls" if cls_token else "mean")
    return vit_module.ViTConfig(**{**base, **overrides})


def vit_from_timm(source: Any, *, dtype: torch.dtype | None = None, **overrides: Any) -> vit_module.ViT:
    """A :class:`ViT` with the weights of a timm ``VisionTransformer``.

    Args:
        source: a timm model, a local folder (``config.json`` + weights, as timm's ``save_for_hf``
            writes it), a ``(config, state_dict)`` pair or a bare state dict (with ``n_heads=``).
        overrides: :class:`ViTConfig` fields, e.g. ``n_heads=12``.
    """
    if isinstance(source, torch.nn.Module):  # a timm model: its own settings, then its weights
        sd = source.state_dict()
        config = {"global_pool": getattr(source, "global_pool", None),
                  "model_args": {"num_heads": source.blocks[0].attn.num_heads}}
        norm = getattr(source, "norm", None)
        if isinstance(norm, torch.nn.LayerNorm) and norm.eps != 1e-6:
            raise ValueError(f"timm ViT with LayerNorm eps {norm.eps}; tfmcourse's ViT uses 1e-6 as timm does")
        act = source.blocks[0].mlp.act
        if not (isinstance(act, torch.nn.GELU) and act.approximate == "none"):
            raise ValueError(f"timm ViT with activation {act}; tfmcourse's ViT uses the exact GELU")
    else:
        config, sd = _config_and_weights(source)
    vc = vit_config_from_timm(config, sd, **overrides)
    mapped, unused = {}, []
    for k, v in sd.items():  # the same names, but the MLP is the FFN
        if k.startswith("blocks.") and ".mlp." in k:
            k = k.replace(".mlp.", ".ffn.")
        mapped[k] = v
    model = vit_module.ViT(vc)
    _load_strict(model, mapped, unused, "ViT.from_timm")
    return model.to(dtype) if dtype is not None else model


# ------------------------------------------------------------------------------------------ tokenizer
class HFTokenizer:
    """``encode``/``decode`` of the tokenizer saved in a checkpoint folder (``tokenizer.json`` read with the
    ``tokenizers`` package, or whatever ``transformers``' ``AutoTokenizer`` reads there), offline.

    Its ``encode``/``decode`` match tfmcourse's own tokenizers, so :func:`tfmcourse.train.cli_sample.generate_text`
    takes either.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        path = Path(path).expanduser()
        self._tok: Any = None
        if (path / "tokenizer.json").is_file():
            try:
                from tokenizers import Tokenizer
                self._tok, self._fast = Tokenizer.from_file(str(path / "tokenizer.json")), True
            except ImportError:
                pass
        if self._tok is None:
            try:
                from transformers import AutoTokenizer
            except ImportError:
                raise ImportError(f"reading the tokenizer in {path} needs the tokenizers package (for "
                                  f"tokenizer.json: pip install tokenizers) or transformers") from None
            try:
                self._tok, self._fast = AutoTokenizer.from_pretrained(str(path), local_files_only=True), False
            except (OSError, ValueError) as e:
                raise FileNotFoundError(f"{path} holds no tokenizer (tokenizer.json, or vocab.json + merges.txt "
                                        f"for GPT-2): copy the tokenizer files next to the weights ({e})") from None

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text).ids if self._fast else self._tok.encode(text)

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids)
