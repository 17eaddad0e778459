"""`multiplt testgen`: an LLM writes asserts for corpus functions; the sandbox keeps the passing
ones, measures coverage and infers types (MultiPL-T step 1b)."""

from __future__ import annotations

import json

from multiplt.generation.backends import NAMES, TOKENIZER_HELP
from multiplt.testgen.config import MIN_COVERAGE


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "testgen", help="LLM-written asserts for corpus functions, validated in the sandbox",
        description="For each function of a functions dataset (multiplt corpus build's "
        "functions/), sample --n completions of MultiPL-T's test prompt, keep the asserts "
        "`assert f(args) == expr`, run each alone in the sandbox, measure the statement "
        "coverage of the passing ones together and infer types from the values they saw. "
        "Writes OUT/tests/, OUT/excluded/ and OUT/funnel.json; reruns do only missing work.")
    p.add_argument("--functions", required=True, metavar="URI",
                   help="functions dataset: a parquet file or folder of parquet shards (or the "
                   "corpus output root holding functions/)")
    p.add_argument("--out", required=True, metavar="URI", help="output folder")
    p.add_argument("--backend", default="transformers", choices=NAMES)
    p.add_argument("--model", help="Hub name, local folder or storage URI of the test writer")
    p.add_argument("--revision")
    p.add_argument("--tokenizer", help=TOKENIZER_HELP)
    p.add_argument("--n", type=int, default=5, help="completions per function (default 5)")
    p.add_argument("--temperature", type=float, default=0.2)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--max-new-tokens", type=int, default=400)
    p.add_argument("--min-coverage", type=int, default=MIN_COVERAGE,
                   help="drop functions under this statement coverage in %% (default %(default)s)")
    p.add_argument("--shard", metavar="K/N", help="rows whose sha1 is K modulo N (K from 0)")
    p.add_argument("--workers", type=int, help="sandboxed runners at once (default: one per core, at most MULTIPLT_CPUS)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per assert (default 5)")
    p.add_argument("--replay-source", metavar="URI",
                   help="replay backend: completion folder or JSONL of {name: sha1, completion}")
    p.add_argument("--seed", type=int, default=0, help="run seed (sample i of f uses (seed, sha1, i))")
    p.add_argument("--batch-size", type=int,
                   help="optional cap on the sequences in flight (default: as many as memory allows, "
                   "with continuous batching)")
    p.add_argument("--api-base", help="openai backend: server URL")
    p.add_argument("--concurrency", type=int, help="openai backend: parallel requests")
    p.add_argument("--stage", default="all", choices=["all", "generate", "validate", "write"],
                   help="run one stage of the shard: generate (completions; GPU), validate (the "
                   "sandbox), write (parquet and funnel); default all three")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run asserts WITHOUT isolation (trusted code only)")
    p.set_defaults(func=run)


def run(args) -> int:
    from multiplt.execution.files import parse_shard
    from multiplt.testgen.config import TestgenConfig
    from multiplt.testgen.pipeline import run as run_testgen

    cfg = TestgenConfig(
        functions=args.functions, out=args.out, backend=args.backend, model=args.model,
        revision=args.revision, tokenizer=args.tokenizer, n=args.n, temperature=args.temperature,
        top_p=args.top_p, max_new_tokens=args.max_new_tokens, min_coverage=args.min_coverage,
        shard=parse_shard(args.shard), workers=args.workers, timeout=args.timeout,
        replay_source=args.replay_source, seed=args.seed, batch_size=args.batch_size,
        api_base=args.api_base, concurrency=args.concurrency,
        unsafe_no_sandbox=args.unsafe_no_sandbox)
    summary = run_testgen(cfg, args.stage)
    summary.pop("funnel", None)
    print(json.dumps(summary))
    return 0
