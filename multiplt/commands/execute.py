"""`multiplt execute`: run completions in the sandbox and write MultiPL-E results files."""

from __future__ import annotations

import json


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "execute", help="run each completion (prompt + completion + tests) in the sandbox",
        description="Run every completion of a folder of MultiPL-E completion files "
        "(<name>.json.gz) in the sandbox and write <name>.results.json.gz beside them (or to "
        "--out). Reruns do only the missing completions; identical programs run once.")
    p.add_argument("--in", dest="in_uri", required=True, metavar="URI",
                   help="folder of <name>.json.gz completion files (file:// path or s3://)")
    p.add_argument("--out", dest="out_uri", metavar="URI",
                   help="folder for <name>.results.json.gz (default: --in)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="programs run at once (default: one per available core, at most "
                   "$MULTIPLT_CPUS when set)")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="wall-clock limit per program in seconds (default: the language's: "
                   "15 s; 5 s for R and Julia)")
    p.add_argument("--shard", metavar="K/N",
                   help="only the K-th of N round-robin shards of the sorted problem names; "
                   "K counts from 0 (0/4 .. 3/4)")
    p.add_argument("--unsafe-no-sandbox", action="store_true",
                   help="run programs WITHOUT isolation when no sandbox is available "
                   "(trusted code only)")
    p.add_argument("--allow-empty", action="store_true",
                   help="a folder without completion files is nothing to do, not an error")
    p.set_defaults(func=run)


def run(args) -> int:
    from multiplt.execution.executor import execute
    from multiplt.storage.outputs import check_out

    if args.out_uri is not None:  # before the results' paths are made from it
        check_out(args.out_uri)
    summary = execute(args.in_uri, args.out_uri, workers=args.workers, timeout=args.timeout,
                      shard=args.shard, unsafe_no_sandbox=args.unsafe_no_sandbox,
                      allow_empty=args.allow_empty)
    print(json.dumps(summary))
    return 0
