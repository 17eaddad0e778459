"""`multiplt corpus build|dedup|merge`: Python functions for MultiPL-T's step 1 (docs/corpus.md)."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("corpus", help="extract, filter, decontaminate and deduplicate "
                                   "Python functions from a corpus")
    sub = parser.add_subparsers(dest="corpus_command", metavar="SUBCOMMAND", required=True)

    build = sub.add_parser(
        "build", help="build the functions dataset (or one shard of it with --shard)",
        description="Write OUT/functions/ (kept rows), OUT/excluded/ (dropped rows with their "
        "reason) and OUT/funnel.json. With --shard K/N only that shard's parts are written "
        "(then run `corpus dedup` for every bucket and `corpus merge`). Rerunning skips finished work.")
    build.add_argument("--source", required=True,
                       help="a folder of .py files; a .parquet/.jsonl(.gz) file or a folder of them "
                       "with a `content` column; hf://datasets/OWNER/NAME[/DIR][@REV]; or stdlib")
    build.add_argument("--out", required=True, help="output folder URI (file:// path or s3://)")
    build.add_argument("--benchmarks", default="humaneval",
                       help="comma-separated benchmarks to decontaminate against: humaneval and/or "
                       "URIs of HumanEval- or MBPP-format JSONL files (default: humaneval)")
    build.add_argument("--shard", metavar="K/N", default=None,
                       help="only the K-th of N round-robin shards of the sorted input files")
    build.add_argument("--workers", type=int, default=1, help="parallel type-check batches")
    build.add_argument("--limit", type=int, default=None, help="read only the first N documents (per shard)")
    build.add_argument("--no-typecheck", action="store_true", help="skip the Pyright filter")
    build.add_argument("--typecheck-batch", type=int, default=250, help="files per Pyright run (250)")
    build.add_argument("--near-threshold", type=float, default=0.7,
                       help="MinHash LSH Jaccard threshold for near duplicates (0.7)")
    build.add_argument("--shingle", type=int, default=5, help="tokens per MinHash shingle (5)")
    build.add_argument("--num-perm", type=int, default=128, help="MinHash permutations (128; at most 4096)")
    build.set_defaults(func=_build)

    dedup = sub.add_parser("dedup", help="one bucket of the cross-shard dedup pass",
                           description="Needs every shard of OUT finished.")
    dedup.add_argument("--out", required=True, help="the output folder of `corpus build --shard`")
    dedup.add_argument("--bucket", metavar="B/D", required=True, help="bucket B of D (B counts from 0)")
    dedup.set_defaults(func=_dedup)

    merge = sub.add_parser("merge", help="apply the dedup decisions; write functions/, excluded/, funnel.json")
    merge.add_argument("--out", required=True, help="the output folder of the shards")
    merge.set_defaults(func=_merge)


def _config(args):
    from multiplt.corpus.config import MAX_NUM_PERM, CorpusConfig
    from multiplt.errors import MultipltError

    benchmarks = tuple(b.strip() for b in args.benchmarks.split(",") if b.strip())
    if not benchmarks:
        raise MultipltError("--benchmarks is empty")
    for flag, value, least in (("--workers", args.workers, 1), ("--limit", args.limit, 1),
                               ("--typecheck-batch", args.typecheck_batch, 1),
                               ("--shingle", args.shingle, 1), ("--num-perm", args.num_perm, 2)):
        if value is not None and value < least:
            raise MultipltError(f"{flag} must be at least {least}, got {value}")
    if args.num_perm > MAX_NUM_PERM:
        raise MultipltError(f"--num-perm must be at most {MAX_NUM_PERM}, got {args.num_perm}")
    if not 0 < args.near_threshold <= 1:  # NaN too
        raise MultipltError(f"--near-threshold must be in (0, 1], got {args.near_threshold}")
    return CorpusConfig(source=args.source, out=args.out, benchmarks=benchmarks, limit=args.limit,
                        workers=args.workers, typecheck=not args.no_typecheck,
                        typecheck_batch=args.typecheck_batch, near_threshold=args.near_threshold,
                        shingle=args.shingle, num_perm=args.num_perm)


def _build(args) -> int:
    from multiplt.corpus.merge import summary
    from multiplt.corpus.pipeline import build
    from multiplt.execution.files import parse_shard
    from multiplt.storage.outputs import check_out

    check_out(args.out)  # before any path is made from it
    shard = parse_shard(args.shard)
    result = build(_config(args), shard)
    if shard is None:
        print(f"{summary(result)} -> {args.out}")
    else:
        print(f"shard {shard[0]}/{shard[1]} done -> {args.out}")
    return 0


def _dedup(args) -> int:
    from multiplt.corpus.dedup import run_bucket
    from multiplt.execution.files import parse_shard
    from multiplt.storage.outputs import check_out

    check_out(args.out)
    b, d = parse_shard(args.bucket, "--bucket")
    info = run_bucket(args.out, b, d)
    print(f"dedup bucket {b}/{d}: {info['decisions']} decisions")
    return 0


def _merge(args) -> int:
    from multiplt.corpus.merge import merge, summary
    from multiplt.storage.outputs import check_out

    check_out(args.out)
    print(f"{summary(merge(args.out))} -> {args.out}")
    return 0
