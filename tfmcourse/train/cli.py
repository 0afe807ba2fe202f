"""``tfmcourse train gpt|seq2seq|vit``: train a model of the course on offline data, on any device.

Examples::

    tfmcourse train gpt                                   # char GPT on the stdlib source, 93 CPU-seconds
    tfmcourse train gpt --data my.txt --device cuda --steps 5000 --n-layers 6 --n-heads 6 \\
        --d-model 384 --block-size 256 --batch-size 64 --dropout 0.2 --lr 1e-3 --compile
    tfmcourse train seq2seq --task reverse                # encoder-decoder on a digit task
    tfmcourse train vit --data digits                     # ViT on scikit-learn's 8x8 digits
    tfmcourse train gpt --resume                          # continue runs/gpt from its checkpoint
    torchrun --nproc_per_node 4 -m tfmcourse.cli train gpt ...   # data-parallel on 4 GPUs

Each run writes ``OUT/ckpt.pt`` (resumable), ``OUT/metrics.jsonl`` and ``OUT/metrics.png``.

Time on a CPU: each kind's ``--help`` quotes the CPU time its defaults took (``CPU_SECONDS``). With one
thread that is also the wall time on a free core. On a busy machine PyTorch's extra threads cost more CPU
time than they save: the ``gpt`` defaults used 93 s with ``OMP_NUM_THREADS=1`` but over 400 s with two
threads on the same machine while other jobs ran.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from .cli_common import Parser, add_runtime_flags, examples, run_cli

PROG = "tfmcourse train"

# Sizes and schedules that train in a minute or two on a laptop CPU; scale them up with flags on a GPU.
# CPU time of each default run (user + sys, one thread: OMP_NUM_THREADS=1), measured on the course's
# 2-core machine on 2026-12-01 with `/usr/bin/time -v tfmcourse train KIND`; `--help` quotes it.
CPU_SECONDS = {"gpt": 93, "seq2seq": 26, "vit": 29}
DEFAULTS: dict[str, dict[str, Any]] = {
    "gpt": dict(n_layers=4, n_heads=4, d_model=128, block_size=64, d_ff=None, dropout=0.0, steps=600,
                batch_size=32, lr=3e-3, warmup=60, weight_decay=0.1, betas=(0.9, 0.95), eval_every=100,
                eval_batches=20),
    "seq2seq": dict(n_layers=2, n_heads=4, d_model=64, d_ff=128, dropout=0.0, steps=800, batch_size=64,
                    lr=3e-3, warmup=50, weight_decay=0.01, betas=(0.9, 0.98), eval_every=250, eval_batches=8),
    "vit": dict(n_layers=2, n_heads=4, d_model=128, d_ff=None, patch_size=4, pool="mean", dropout=0.1,
                steps=1500, batch_size=64, lr=2e-3, warmup=50, weight_decay=0.1, betas=(0.9, 0.999),
                eval_every=250, eval_batches=None),
}
MODEL_FLAGS = ("n_layers", "n_heads", "d_model", "d_ff", "dropout", "block_size", "patch_size", "pool")
DATA_FLAGS = ("data", "task", "max_chars", "val_fraction", "min_len", "max_len", "n_train", "n_test", "image_size")
# flag -> TrainConfig field
TRAIN_FLAGS = {"steps": "steps", "batch_size": "batch_size", "grad_accum": "grad_accum", "lr": "lr",
               "min_lr": "min_lr", "warmup": "warmup_steps", "weight_decay": "weight_decay",
               "grad_clip": "grad_clip", "eval_every": "eval_every", "log_every": "log_every", "seed": "seed",
               "amp": "amp", "compile": "compile", "deterministic": "deterministic"}


def build_parser() -> Parser:
    p = Parser(prog=PROG, description="Train a GPT, an encoder-decoder or a ViT on offline data, on any device.\n"
               "`tfmcourse train KIND --help` lists the options of each kind.",
               epilog=examples(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="kind", required=True, metavar="{gpt,seq2seq,vit}", parser_class=Parser)
    helps = {"gpt": "character-level GPT on the stdlib source or a text file",
             "seq2seq": "encoder-decoder Transformer on copy / reverse / sort / add",
             "vit": "Vision Transformer on 8x8 digits or procedural shapes"}
    for kind, help_ in helps.items():
        d = DEFAULTS[kind]
        cost = (f" The defaults ({d['steps']} steps) took {CPU_SECONDS[kind]} s of CPU time with one thread "
                f"(OMP_NUM_THREADS=1) on a 2-core machine; more steps cost proportionally more.")
        k = sub.add_parser(kind, help=help_, description=f"Train a {help_}.{cost}")
        data = k.add_argument_group("data")
        if kind == "gpt":
            data.add_argument("--data", metavar="PATH", help="'stdlib' (the Python standard library's source) "
                              "or a UTF-8 text file (default: stdlib)")
            data.add_argument("--max-chars", type=int, help="use at most this many characters (default: 2000000 "
                              "for stdlib, the whole file otherwise)")
            data.add_argument("--val-fraction", type=float, help="last part of the text kept for validation "
                              "(default: 0.1)")
        elif kind == "seq2seq":
            data.add_argument("--task", choices=("copy", "reverse", "sort", "add"), help="default: reverse")
            data.add_argument("--min-len", type=int, help="shortest source, in characters (default: 3)")
            data.add_argument("--max-len", type=int, help="longest source, in characters (default: 10)")
            data.add_argument("--n-train", type=int, help="training examples (default: 10000)")
            data.add_argument("--n-test", type=int, help="held-out examples (default: 1000)")
        else:
            data.add_argument("--data", choices=("digits", "shapes"), help="default: digits")
            data.add_argument("--image-size", type=int, help="shapes only: image side in pixels (default: 16)")
            data.add_argument("--n-train", type=int, help="shapes only: training images (default: 4000)")
            data.add_argument("--n-test", type=int, help="shapes only: test images (default: 1000)")
        m = k.add_argument_group("model")
        each = " (each of encoder and decoder)" if kind == "seq2seq" else ""
        m.add_argument("--n-layers", type=int, help=f"blocks{each} (default: {d['n_layers']})")
        m.add_argument("--n-heads", type=int, help=f"attention heads (default: {d['n_heads']})")
        m.add_argument("--d-model", type=int, help=f"width of the residual stream (default: {d['d_model']})")
        m.add_argument("--d-ff", type=int, help=f"FFN hidden width (default: {d['d_ff'] or '4 x d_model'})")
        m.add_argument("--dropout", type=float, help=f"dropout rate (default: {d['dropout']})")
        if kind == "gpt":
            m.add_argument("--block-size", type=int, help=f"context length in characters (default: {d['block_size']})")
        if kind == "vit":
            m.add_argument("--patch-size", type=int, help=f"patch side in pixels (default: {d['patch_size']})")
            m.add_argument("--pool", choices=("cls", "mean"),
                           help=f"CLS token or mean of patches (default: {d['pool']})")
        t = k.add_argument_group("training")
        t.add_argument("--steps", type=int, help=f"optimizer steps (default: {d['steps']})")
        t.add_argument("--batch-size", type=int, help=f"examples per step and process (default: {d['batch_size']})")
        t.add_argument("--grad-accum", type=int, help="micro-batches accumulated into one step (default: 1)")
        t.add_argument("--lr", type=float, help=f"peak learning rate (default: {d['lr']})")
        t.add_argument("--min-lr", type=float, help="learning rate at the end of the cosine (default: lr / 10)")
        t.add_argument("--warmup", type=int, help=f"linear warmup steps (default: {d['warmup']})")
        t.add_argument("--weight-decay", type=float,
                       help=f"AdamW weight decay on matrices (default: {d['weight_decay']})")
        t.add_argument("--grad-clip", type=float, help="clip the gradient norm to this (default: 1.0; 0 = off)")
        t.add_argument("--eval-every", type=int,
                       help=f"evaluate and checkpoint every N steps (default: {d['eval_every']})")
        t.add_argument("--eval-batches", type=int, help="validation batches per evaluation (default: "
                       f"{d['eval_batches'] or 'all'}; 0 = all)")
        t.add_argument("--log-every", type=int, help="log the training loss every N steps (default: 10)")
        t.add_argument("--seed", type=int, help="seeds initialisation, dropout and data order (default: 0)")
        r = k.add_argument_group("run")
        add_runtime_flags(r)
        r.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                       help="mixed precision (default: on with CUDA: bf16, or fp16 with loss scaling)")
        r.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                       help="torch.compile the model (default: off)")
        r.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=None,
                       help="deterministic kernels: a run and its resumption give identical losses")
        r.add_argument("--out", metavar="DIR", help=f"output folder (default: runs/{kind})")
        r.add_argument("--resume", action="store_true", help="continue from OUT/ckpt.pt")
        r.add_argument("--overwrite", action="store_true", help="start over even if OUT holds a checkpoint")
        r.add_argument("--no-progress", action="store_true", help="no progress bar (for logs and CI)")
        for action in k._actions:  # short metavars keep --help readable
            if action.type in (int, float) and action.choices is None:
                action.metavar = "N" if action.type is int else "X"
    return p


def _data_spec(kind: str, a: dict[str, Any]) -> dict[str, Any]:
    if kind == "gpt":
        src = a.get("data") or "stdlib"
        if src != "stdlib":
            src = str(Path(src).expanduser().resolve())
        spec = {"source": src, "val_fraction": a.get("val_fraction") or 0.1}
        if a.get("max_chars") or src == "stdlib":
            spec["max_chars"] = a.get("max_chars") or 2_000_000
        return spec
    if kind == "seq2seq":
        return {"task": a.get("task") or "reverse", "min_len": a.get("min_len") or 3, "max_len": a.get("max_len") or 10,
                "n_train": a.get("n_train") or 10_000, "n_test": a.get("n_test") or 1_000, "seed": 0}
    spec = {"dataset": a.get("data") or "digits", "seed": 0}
    if spec["dataset"] == "shapes":
        spec.update(image_size=a.get("image_size") or 16, n_train=a.get("n_train") or 4000,
                    n_test=a.get("n_test") or 1000)
    return spec


def _train(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    kind = args.kind
    given = {k: v for k, v in vars(args).items() if v is not None}
    out = Path(args.out or f"runs/{kind}")
    ckpt_path = out / "ckpt.pt"

    from ..utils import count_parameters, get_device, seed_everything
    from . import tasks
    from .checkpoint import load_checkpoint
    from .distributed import cleanup_distributed, setup_distributed
    from .trainer import TrainConfig, Trainer

    info, device = setup_distributed(get_device(args.device))
    say = print if info.is_main else (lambda *a, **k: None)
    train_kw = {TRAIN_FLAGS[f]: DEFAULTS[kind][f] for f in ("steps", "batch_size", "lr", "weight_decay", "eval_every")}
    train_kw.update(warmup_steps=DEFAULTS[kind]["warmup"], betas=DEFAULTS[kind]["betas"])
    if args.resume:
        ckpt = load_checkpoint(ckpt_path)
        meta = ckpt["meta"]
        if meta.get("kind") != kind:
            raise ValueError(f"{ckpt_path} holds a {meta.get('kind')} run, not {kind}; "
                             f"use `tfmcourse train {meta.get('kind')} --resume` or another --out")
        clash = [f for f in MODEL_FLAGS + DATA_FLAGS if f in given]
        if clash:
            raise ValueError(f"--{clash[0].replace('_', '-')} cannot change when resuming (model and data come "
                             f"from the checkpoint); drop it, or start a new run with another --out")
        train_kw.update({f.name: ckpt["train_config"][f.name] for f in fields(TrainConfig)
                         if f.name in ckpt["train_config"]})
        spec, model_cfg, tok_state = meta["data"], meta["model_config"], meta.get("tokenizer")
    else:
        if ckpt_path.exists() and not args.overwrite:
            raise ValueError(f"{out} already holds a checkpoint; pass --resume to continue it, --overwrite to "
                             f"start over, or choose another --out")
        spec, model_cfg, tok_state = _data_spec(kind, given), None, None
    for flag, name in TRAIN_FLAGS.items():
        if flag in given:
            train_kw[name] = given[flag]
    if not args.resume and "warmup" not in given:  # short runs: keep warmup to a tenth of the run
        train_kw["warmup_steps"] = min(train_kw["warmup_steps"], train_kw["steps"] // 10)
    if train_kw.get("grad_clip") == 0:
        train_kw["grad_clip"] = None
    eval_batches = given.get("eval_batches", DEFAULTS[kind]["eval_batches"]) or None
    cfg = TrainConfig(**{**train_kw, "out_dir": str(out), "progress": not args.no_progress})
    if args.resume and ckpt["step"] >= cfg.steps:
        raise ValueError(f"{ckpt_path} is already at step {ckpt['step']} of {cfg.steps}; pass a larger --steps "
                         f"to train further")

    data = tasks.load_data(kind, spec, tok_state)
    if model_cfg is None:
        sizes = {**DEFAULTS[kind], **{f: given[f] for f in MODEL_FLAGS if f in given}}
        model_cfg = asdict(tasks.make_model_config(data, sizes))
    seed_everything(cfg.seed)  # the same initial weights for the same seed
    model = tasks.build_model(kind, model_cfg)
    block = model_cfg.get("block_size", 0)
    count, unit = tasks.count_items(kind)
    meta = {"kind": kind, "model_config": model_cfg, "data": spec, "title": f"{kind} ({_describe_data(spec)})"}
    if data.tokenizer is not None:
        meta["tokenizer"] = data.tokenizer.state_dict()
    eval_fn = None
    if kind != "gpt":  # decoding the whole test set at every evaluation would dominate a short run
        def eval_fn(m):
            return tasks.task_metrics(data, m, device, max_items=500 if kind == "seq2seq" else None)
    trainer = Trainer(model, tasks.train_batches(data, cfg.batch_size, block_size=block, seed=cfg.seed, rank=info.rank,
                                                 world_size=info.world_size, pin_memory=device.type == "cuda"),
                      cfg, device=device, eval_fn=eval_fn, count_items=count, unit=unit, meta=meta,
                      val_batches=tasks.val_batches(data, cfg.batch_size, block_size=block, max_batches=eval_batches,
                                                    rank=info.rank, world_size=info.world_size))

    c = model_cfg
    layers = c.get("n_layers", c.get("n_encoder_layers"))
    say(f"{PROG} {kind}: {count_parameters(model) / 1e6:.2f}M parameters ({layers} layers"
        f"{' each side' if kind == 'seq2seq' else ''}, {c['n_heads']} heads, d_model {c['d_model']}); "
        f"data: {_describe_data(spec)}")
    if kind == "gpt":
        say(f"  vocabulary {data.info['vocab_size']} characters; train {len(data.train):,} / val {len(data.val):,}"
            f" tokens; unigram baseline {data.info['unigram_entropy']:.3f} nats")
    per_step = cfg.batch_size * cfg.grad_accum * info.world_size
    say(f"  {cfg.steps} steps x {per_step} {'windows of ' + str(block) + ' tokens' if kind == 'gpt' else 'examples'}"
        f" | lr {cfg.lr:g} -> {cfg.final_lr:g}, warmup {cfg.warmup_steps} | device {device} ({trainer.precision})"
        f"{f', {info.world_size} processes' if info.distributed else ''}{', compiled' if cfg.compile else ''}")
    if args.resume:
        say(f"  resuming from {ckpt_path} at step {ckpt['step']}")
    t0 = time.perf_counter()
    try:
        trainer.fit(resume=ckpt_path if args.resume else False)
    except KeyboardInterrupt:
        last = trainer.last_checkpoint_step
        say(f"\ninterrupted at step {trainer.step}; `tfmcourse train {kind} --resume --out {out}` continues from "
            f"the last checkpoint" + (f" (step {last})" if last else ""), file=sys.stderr)
        return 130
    finally:
        cleanup_distributed()
    _summary(say, trainer, data, kind, time.perf_counter() - t0, out, device)
    return 0


def _describe_data(spec: dict[str, Any]) -> str:
    if "source" in spec:
        return "stdlib source" if spec["source"] == "stdlib" else Path(spec["source"]).name
    if "task" in spec:
        return f"{spec['task']}, lengths {spec['min_len']}-{spec['max_len']}"
    return spec["dataset"]


def _summary(say, trainer, data, kind: str, seconds: float, out: Path, device) -> None:
    from .tasks import perplexity

    train = [r for r in trainer.history if r["split"] == "train"]
    val = [r for r in trainer.history if r["split"] == "val"]
    parts = [f"done in {seconds:.0f}s"]
    if train:
        parts.append(f"train loss {train[-1]['loss']:.4f}")
    if val:
        v = val[-1]
        parts.append(f"val loss {v['loss']:.4f}")
        if kind == "gpt":
            parts[-1] += (f" (perplexity {perplexity(v['loss']):.2f}; "
                          f"unigram baseline {data.info['unigram_entropy']:.3f})")
        parts += [f"{k} {v[k]:.4f}" for k in ("exact_match", "bleu", "accuracy") if k in v]
    say(", ".join(parts))
    if kind == "gpt" and trainer.info.is_main:
        from .cli_sample import generate_text
        prompt = "def " if set("def ") <= set(data.tokenizer.stoi) else ""
        text = generate_text(trainer.model, data.tokenizer, prompt, 200, temperature=0.8, seed=0, device=device)
        say("sample:\n" + text.strip("\n"))
    say(f"wrote {out / 'ckpt.pt'}, {out / 'metrics.jsonl'}, {out / 'metrics.png'}")
    hint = "sample --ckpt {c} --prompt 'def '" if kind == "gpt" else "eval --ckpt {c}"
    say("next: tfmcourse " + hint.format(c=out / "ckpt.pt"))


def main(argv: list[str] | None = None) -> int:
    return run_cli(PROG, _train, argv)


if __name__ == "__main__":
    sys.exit(main())
