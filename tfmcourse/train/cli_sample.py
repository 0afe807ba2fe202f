"""``tfmcourse sample``: generate text from a trained GPT checkpoint (or decode with a seq2seq one), or from
a Hugging Face GPT-2 / LLaMA checkpoint folder run on the course's own GPT.

Examples::

    tfmcourse sample --ckpt runs/gpt/ckpt.pt --prompt "def " --max-new-tokens 300
    tfmcourse sample --ckpt runs/gpt/ckpt.pt --temperature 0.5 --top-k 10 --num-samples 3
    tfmcourse sample --ckpt runs/seq2seq/ckpt.pt --prompt 31415      # greedy answer of the digit task
    tfmcourse sample --hf ~/models/gpt2 --prompt "The Transformer" --max-new-tokens 40 --top-k 40
"""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from .cli_common import Parser, add_runtime_flags, examples, run_cli

if TYPE_CHECKING:
    import torch
    from torch import nn

PROG = "tfmcourse sample"


def generate_text(model: nn.Module, tokenizer, prompt: str, max_new_tokens: int, *, temperature: float = 1.0,
                  top_k: int | None = None, seed: int | None = None, device: torch.device | str = "cpu",
                  use_cache: bool = True) -> str:
    """``prompt`` followed by ``max_new_tokens`` tokens sampled from a GPT (characters for the course's own
    GPTs; any tokenizer with ``encode``/``decode`` works, e.g. :class:`tfmcourse.pretrained.HFTokenizer`).

    Args:
        temperature: ``< 1`` sharpens the distribution (safer, more repetitive), ``> 1`` flattens it;
            ``0`` always picks the most likely character.
        top_k: sample among the ``k`` most likely characters only.
        seed: makes the sample reproducible.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    import torch

    try:
        ids = tokenizer.encode(prompt or "\n")  # an empty prompt starts at the beginning of a line
    except ValueError:
        if prompt:
            raise
        ids = [0]
    device = torch.device(device)
    g = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    idx = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
    was_training = model.training
    model.eval()
    out = model.generate(idx, max_new_tokens, temperature=temperature, top_k=top_k, use_cache=use_cache,
                         generator=g)
    model.train(was_training)
    return prompt + tokenizer.decode(out[0, len(ids):].tolist())


def _sample(argv: list[str]) -> int:
    p = Parser(prog=PROG, description="Generate text from a GPT checkpoint written by `tfmcourse train gpt` "
               "(with a seq2seq checkpoint: the model's greedy answer to --prompt), or from a Hugging Face "
               "GPT-2 / LLaMA checkpoint folder loaded into the course's GPT (nothing is downloaded).",
               epilog=examples(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--ckpt", metavar="PATH", help="checkpoint file, e.g. runs/gpt/ckpt.pt")
    src.add_argument("--hf", metavar="DIR", help="a local Hugging Face GPT-2 or LLaMA folder: config.json, "
                     "model.safetensors (needs `pip install safetensors`) or pytorch_model.bin, and the "
                     "tokenizer files (tokenizer.json needs `pip install tokenizers`)")
    p.add_argument("--prompt", default="", metavar="TEXT", help="text to continue (default: start of a line)")
    p.add_argument("--max-new-tokens", type=int, default=200, metavar="N",
                   help="tokens (characters for the course's GPTs) to generate (default: 200)")
    p.add_argument("--temperature", type=float, default=0.8, metavar="X",
                   help="sampling temperature; 0 = greedy (default: 0.8)")
    p.add_argument("--top-k", type=int, default=None, metavar="K",
                   help="sample among the k most likely tokens only")
    p.add_argument("--num-samples", type=int, default=1, metavar="N", help="independent samples to print (default: 1)")
    p.add_argument("--seed", type=int, default=None, metavar="N", help="make the samples reproducible")
    p.add_argument("--no-cache", action="store_true", help="recompute attention over the whole context each step "
                   "(slower; the KV cache gives the same result)")
    add_runtime_flags(p)
    a = p.parse_args(argv)
    if a.max_new_tokens < 0 or a.num_samples < 1:
        raise ValueError("--max-new-tokens must be >= 0 and --num-samples >= 1")

    from ..tokenizer import tokenizer_from_state_dict
    from ..utils import get_device
    from .checkpoint import load_checkpoint
    from .tasks import build_model

    device = get_device(a.device)
    if a.hf:
        from ..gpt import GPT
        from ..pretrained import HFTokenizer
        model = GPT.from_hf(a.hf).to(device).eval()
        tok = HFTokenizer(a.hf)
        return _print_samples(model, tok, a, device)
    ckpt = load_checkpoint(a.ckpt)
    meta = ckpt.get("meta", {})
    kind = meta.get("kind")
    if kind not in ("gpt", "seq2seq"):
        raise ValueError(f"{a.ckpt} holds a {kind or 'non-tfmcourse'} model; sampling works with gpt (and seq2seq) "
                         f"checkpoints; use `tfmcourse eval --ckpt {a.ckpt}` for a {kind or 'model'}")
    model = build_model(kind, meta["model_config"]).to(device)
    model.load_state_dict(ckpt["model"])
    model.eval()
    if kind == "seq2seq":
        import torch

        from ..data import BOS, EOS, SEQ_VOCAB
        src = torch.tensor([SEQ_VOCAB.encode(a.prompt or "12345")], device=device)
        out = model.generate(src, min(a.max_new_tokens, model.config.max_len - 1), bos_id=BOS, eos_id=EOS)
        print(SEQ_VOCAB.decode(out[0]))
        return 0
    return _print_samples(model, tokenizer_from_state_dict(meta["tokenizer"]), a, device)


def _print_samples(model: nn.Module, tok, a: argparse.Namespace, device: torch.device) -> int:
    for i in range(a.num_samples):
        if i:
            print("-" * 40)
        seed = None if a.seed is None else a.seed + i
        print(generate_text(model, tok, a.prompt, a.max_new_tokens, temperature=a.temperature, top_k=a.top_k,
                            seed=seed, device=device, use_cache=not a.no_cache))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROG, _sample, argv)


if __name__ == "__main__":
    sys.exit(main())
