"""``tfmcourse eval``: score a checkpoint on its held-out data, rebuilt from the settings it stores.

* gpt: validation loss (nats per character) and perplexity, next to the unigram baseline;
* seq2seq: validation loss, exact-sequence accuracy and BLEU of greedy decoding on the test set;
* vit: validation loss and accuracy on the test split.

Examples::

    tfmcourse eval --ckpt runs/seq2seq/ckpt.pt
    tfmcourse eval --ckpt runs/gpt/ckpt.pt --json
"""
from __future__ import annotations

import argparse
import json
import sys

from .cli_common import Parser, add_runtime_flags, examples, run_cli

PROG = "tfmcourse eval"


def evaluate_checkpoint(path: str, *, device: str = "auto", batch_size: int = 256,
                        max_batches: int | None = None) -> dict[str, float]:
    """Metrics of the checkpoint at ``path`` on the validation/test data it was trained against.

    Args:
        device: where to run the model.
        batch_size: examples (or text windows) per forward pass.
        max_batches: cap on validation batches for the loss (default: the whole set).
    """
    import torch

    from ..utils import get_device
    from . import tasks
    from .checkpoint import load_checkpoint

    dev = get_device(device)
    ckpt = load_checkpoint(path)
    meta = ckpt.get("meta", {})
    kind = meta.get("kind")
    if kind not in tasks.KINDS:
        raise ValueError(f"{path} was not written by `tfmcourse train` (no model kind in its metadata)")
    data = tasks.load_data(kind, meta["data"], meta.get("tokenizer"))
    model = tasks.build_model(kind, meta["model_config"]).to(dev)
    model.load_state_dict(ckpt["model"])
    model.eval()
    block = meta["model_config"].get("block_size", 0)
    total = count = 0.0
    with torch.no_grad():
        for batch in tasks.val_batches(data, batch_size, block_size=block, max_batches=max_batches)():
            _, loss = model(*(t.to(dev) for t in batch))
            total, count = total + loss.item() * len(batch[0]), count + len(batch[0])
    out: dict[str, float] = {"step": ckpt["step"], "val_loss": total / max(count, 1)}
    if kind == "gpt":
        out["perplexity"] = tasks.perplexity(out["val_loss"])
        out["unigram_entropy"] = data.info["unigram_entropy"]
    out.update(tasks.task_metrics(data, model, dev, batch_size=batch_size))
    return out


def _eval(argv: list[str]) -> int:
    p = Parser(prog=PROG, description="Evaluate a checkpoint written by `tfmcourse train` on its held-out data.",
               epilog=examples(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, metavar="PATH", help="checkpoint file, e.g. runs/vit/ckpt.pt")
    p.add_argument("--batch-size", type=int, default=256, metavar="N", help="examples per forward pass (default: 256)")
    p.add_argument("--max-batches", type=int, default=None, metavar="N",
                   help="cap the validation batches for the loss (default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    add_runtime_flags(p)
    a = p.parse_args(argv)
    if a.batch_size < 1 or (a.max_batches is not None and a.max_batches < 1):
        raise ValueError("--batch-size and --max-batches must be >= 1")
    results = evaluate_checkpoint(a.ckpt, device=a.device, batch_size=a.batch_size, max_batches=a.max_batches)
    if a.json:
        print(json.dumps(results))
        return 0
    print(f"{a.ckpt} (step {results.pop('step')}):")
    notes = {"val_loss": "mean cross-entropy, nats" + (" per character" if "perplexity" in results else ""),
             "unigram_entropy": "nats: the loss of context-free guessing",
             "exact_match": "whole sequences right", "bleu": "character BLEU-4, 0..1",
             "accuracy": "test images right"}
    for k, v in results.items():
        print(f"  {k:<16} {v:>9.4f}   {notes.get(k, '')}".rstrip())
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROG, _eval, argv)


if __name__ == "__main__":
    sys.exit(main())
