"""`multiplt translate`: MultiPL-T step 2. Translate the step-1 Python functions (the `tests/`
output of `multiplt testgen`) into each language with an LLM, keep the translations whose
translated tests pass in the sandbox, clean and deduplicate them, and write a Hugging Face
dataset folder: OUT/data/<split>-*.parquet, OUT/excluded/, OUT/funnel.json (docs/translation.md)."""

from __future__ import annotations

import argparse
import json

from multiplt.generation.backends import NAMES, TOKENIZER_HELP


def register(subparsers) -> None:
    p = subparsers.add_parser("translate", help="translate step-1 functions, validate, dedup (MultiPL-T step 2)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tests", help="step-1 tests dataset: a parquet file, a folder of them, or the "
                   "testgen output root (its tests/ folder is read); required but with --stage summary")
    p.add_argument("--lang", required=True, help="comma-separated language codes, e.g. rkt,jl,r,ml,lua")
    p.add_argument("--out", required=True, help="dataset folder URI (file:// path or s3://)")
    p.add_argument("--backend", default="transformers", choices=NAMES)
    p.add_argument("--model", help="model to translate with (Hub name, folder or URI); optional for replay")
    p.add_argument("--revision", help="model revision")
    p.add_argument("--tokenizer", help=TOKENIZER_HELP)
    p.add_argument("--n", type=int, default=50, help="translations sampled per function (default 50)")
    p.add_argument("--temperature", type=float, default=0.8, help="default 0.8")
    p.add_argument("--top-p", type=float, default=0.95, help="default 0.95")
    p.add_argument("--max-new-tokens", type=int, default=512, help="default 512")
    p.add_argument("--batch-size", type=int,
                   help="optional cap on the sequences in flight (default: as many as memory allows, "
                   "with continuous batching)")
    p.add_argument("--seed", type=int, default=0, help="run seed; sample i of function f uses (seed, f, i)")
    p.add_argument("--rouge-threshold", type=float, default=0.6,
                   help="drop a translation whose ROUGE-L F against a kept one of the same function "
                   "is above this, in (0, 1] (default 0.6)")
    p.add_argument("--shard", default="0/1", metavar="K/N",
                   help="only the K-th of N round-robin shards of the functions (by sha1); K from 0")
    p.add_argument("--limit", type=int, help="only the first N functions of the shard")
    p.add_argument("--workers", type=int, help="programs executed at once (default: one per core)")
    p.add_argument("--timeout", type=float, help="seconds per program (default: the language's)")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run programs WITHOUT isolation when no sandbox is available (trusted code only)")
    p.add_argument("--replay-source", help="replay backend: completion folder or JSONL of "
                   "name (= the function's sha1) + completion; {lang} becomes each language code")
    p.add_argument("--api-base", help="openai backend: server URL, e.g. http://host:8000/v1")
    p.add_argument("--concurrency", type=int, help="openai backend: parallel requests")
    p.add_argument("--stage", default="all", choices=["all", "sample", "collect", "summary"],
                   help="all (default); sample: build prompts and sample only; collect: clean, dedup "
                   "and write, after `multiplt execute` on the shard's work/<lang>/<K>-of-<N>/completions under OUT; "
                   "summary: rewrite OUT/funnel.json and OUT/README.md from the shards' funnels")
    p.set_defaults(func=run)


def run(args) -> int:
    from multiplt.execution.files import parse_shard
    from multiplt.translation.config import TranslateConfig
    from multiplt.translation.pipeline import translate

    cfg = TranslateConfig(
        tests=args.tests, out=args.out, langs=tuple(c.strip() for c in args.lang.split(",") if c.strip()),
        backend=args.backend, model=args.model, revision=args.revision, tokenizer=args.tokenizer,
        n=args.n, temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size, seed=args.seed, rouge_threshold=args.rouge_threshold,
        shard=parse_shard(args.shard), limit=args.limit, workers=args.workers, timeout=args.timeout,
        unsafe_no_sandbox=args.unsafe_no_sandbox, replay_source=args.replay_source,
        api_base=args.api_base, concurrency=args.concurrency, stage=args.stage)
    funnels = translate(cfg)
    print(json.dumps({code: f.get("counts", f) for code, f in funnels.items()}))
    return 0
