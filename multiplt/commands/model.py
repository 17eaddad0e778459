"""`multiplt model init-tiny`: build the small offline GPTBigCode model used by tests and demos."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("model", help="model utilities (init-tiny)", description=__doc__)
    sub = p.add_subparsers(dest="model_command", metavar="SUBCOMMAND", required=True)
    t = sub.add_parser("init-tiny", help="build a tiny GPTBigCode model + BPE tokenizer from local code")
    t.add_argument("--out", required=True, help="output folder (local path, file:// or s3:// URI)")
    t.add_argument("--steps", type=int, help="training steps (default 200)")
    t.add_argument("--vocab-size", type=int, help="tokenizer vocabulary (default 4096)")
    t.add_argument("--layers", type=int, help="transformer layers (default 2)")
    t.add_argument("--hidden", type=int, help="hidden size (default 128)")
    t.add_argument("--seed", type=int, help="random seed (default 0)")
    t.add_argument("--corpus-bytes", type=int, help="characters of code to train on (default 3000000)")
    t.set_defaults(func=init_tiny)


def init_tiny(args: argparse.Namespace) -> int:
    import tempfile

    from multiplt import storage
    from multiplt.errors import MultipltError
    from multiplt.models.tiny import MARKER, TinyConfig, build_tiny_model, holds_other_files
    from multiplt.models.tiny_size import check_fits

    overrides = {"steps": args.steps, "vocab_size": args.vocab_size, "n_layer": args.layers,
                 "n_embd": args.hidden, "seed": args.seed, "corpus_bytes": args.corpus_bytes}
    config = TinyConfig(**{k: v for k, v in overrides.items() if v is not None})
    if (config.steps < 1 or config.vocab_size < 300 or config.n_layer < 1
            or config.n_embd < config.n_head or config.n_embd % config.n_head):
        raise MultipltError(f"bad tiny model shape: steps {config.steps} (>= 1), vocab {config.vocab_size} "
                            f"(>= 300), layers {config.n_layer} (>= 1), hidden {config.n_embd} (a "
                            f"positive multiple of {config.n_head})")
    if config.corpus_bytes < 1:
        raise MultipltError(f"--corpus-bytes must be at least 1, got {config.corpus_bytes}")
    if not -2 ** 63 <= config.seed < 2 ** 64:  # what torch.manual_seed takes
        raise MultipltError(f"--seed must be in [-2**63, 2**64), got {config.seed}")
    check_fits(config)
    local = storage.local_path(args.out)
    if local is not None:
        info = build_tiny_model(local, config)
    else:
        if storage.ls(args.out) and not storage.exists(storage.join(args.out, MARKER)):
            raise holds_other_files(args.out)
        with tempfile.TemporaryDirectory() as tmp:
            info = build_tiny_model(f"{tmp}/model", config)
            storage.upload_dir(f"{tmp}/model", args.out)
    print(f"model init-tiny: {info['parameters']} parameters, loss {info['first_loss']:.2f} -> "
          f"{info['final_loss']:.2f} in {info['seconds']:.0f}s, saved to {args.out}")
    return 0
