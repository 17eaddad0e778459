"""`multiplt train`: fine-tune a base model on one language's data, checkpointing every epoch.

Every field of the training config is a flag (generated from the dataclass), so any recipe value
can be overridden: `--epochs 3 --lr 1e-5 --seq-len 512 --no-gradient-checkpointing`. Several GPUs:
`accelerate launch --num_processes 8 -m multiplt train ...` (the same flags).
"""

from __future__ import annotations

import argparse
import dataclasses

_HELP = {
    "dataset": "storage URI (parquet/JSONL file, or a folder with SPLIT*.parquet|jsonl) or Hub dataset name",
    "split": "dataset split (default: the language's published split name, e.g. racket)",
    "text_column": "column holding the training text",
    "base": "base model: Hub name, local folder, storage URI, or a training output (with --base-revision TAG)",
    "base_revision": "revision of the base model (Hub revision, or a tag of a training output); a Hub base "
                     "loads at the commit the revision is at when the run starts, recorded as base_commit",
    "dataset_revision": "Hub revision (branch, tag or commit) of a Hub --dataset (default: its default "
                        "branch); it loads at the commit the revision is at when the run starts, "
                        "recorded as dataset_commit",
    "tokenizer": "tokenizer (default: the base model's)",
    "experiment": "experiment name, [a-z0-9_]+ (e.g. multiplt)",
    "out": "storage URI for manifest.jsonl, checkpoints/ and state/ (resumes if it has checkpoints)",
    "precision": "auto | bf16-master | bf16-mixed | bf16 | fp32",
    "distributed": "ddp | fsdp",
    "micro_batch_size": "sequences per device per forward pass; 0 (the built-in default) = chosen from the "
                        "GPU memory when the run starts (1 on CPUs); the effective batch stays --batch-size",
    "compile": "torch.compile the model's blocks; unset (the built-in default) = on with one GPU or DDP, "
               "off on CPUs and under FSDP",
}


def register(subparsers) -> None:
    from multiplt import languages
    from multiplt.training.config import TrainConfig, field_types

    parser = subparsers.add_parser(
        "train", help="fine-tune a causal LM on packed sequences; a tagged checkpoint every epoch",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="starcoderbase-1b",
                        help="recipe name in multiplt/recipes/, a local .yaml path, or a file:// or s3:// URI of "
                             "one (default: %(default)s)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config as YAML and exit")
    defaults = TrainConfig()
    for name, typ in field_types().items():
        if name == "recipe":
            continue
        flag = "--" + name.replace("_", "-")
        default = getattr(defaults, name)
        help_text = _HELP.get(name, f"override the recipe (built-in default {default!r})")
        if name == "lang":
            help_text = f"language code ({' '.join(languages.names())}); tags are LANG-EXPERIMENT-epochN"
        if typ is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        else:
            parser.add_argument(flag, dest=name, type=typ, default=None, help=help_text,
                                metavar=name.upper())
    parser.set_defaults(func=run)


def run(args) -> int:
    import sys

    import yaml

    from multiplt.training.config import TrainConfig, resolve

    overrides = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(TrainConfig)
                 if f.name != "recipe"}
    if args.print_config:  # the values a run would use, even before every required flag is set
        config = resolve(args.recipe, overrides, require=False)
        sys.stdout.write(yaml.safe_dump(config.as_dict(), sort_keys=False))
        return 0
    config = resolve(args.recipe, overrides)

    from multiplt.training.loop import train

    rows = train(config)
    for row in rows:
        print(f"{row['tag']}\t{row['uri']}\tstep={row['step']}\teval_loss={row['eval_loss']}")
    return 0
