"""`multiplt score`: pass@k of a results folder, in MultiPL-E's CSV format."""

from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "score", help="pass@k of a folder of <name>.results.json.gz files",
        description="Unbiased pass@k per problem, averaged over the folder's problems. Writes "
        "_scores.csv and _per_problem.parquet into the folder and prints the rows. Problems "
        "with fewer than k completions are left out of pass@k (with a warning).")
    p.add_argument("--in", dest="in_uri", required=True, metavar="URI",
                   help="folder of <name>.results.json.gz files")
    p.add_argument("-k", "--k", dest="k", default="1", metavar="K[,K...]",
                   help="comma-separated k values (default: 1)")
    p.add_argument("--format", choices=("csv", "table", "json"), default="csv",
                   help="what to print (default: csv)")
    p.add_argument("--allow-partial", action="store_true",
                   help="score a folder whose completions are not all generated (the last generate "
                   "into it did not finish, or a problem it selected has no completions file) or not all "
                   "executed yet (by default an error: the score would cover only the samples that exist "
                   "and the programs that ran)")
    p.set_defaults(func=run)


def parse_ks(text: str, flag: str = "-k") -> list[int]:
    """The k values of a comma-separated list; `flag` names the option in errors."""
    from multiplt.errors import MultipltError

    try:
        ks = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise MultipltError(f"{flag} must be comma-separated positive integers, got {text!r}") from None
    if not ks or min(ks) < 1:
        raise MultipltError(f"{flag} must be comma-separated positive integers, got {text!r}")
    return ks


def run(args) -> int:
    from multiplt.evaluation.passk import score
    from multiplt.evaluation.run_folder import SCORES_HEADER, format_table, scores_csv

    rows = score(args.in_uri, ks=parse_ks(args.k), allow_partial=args.allow_partial)
    if args.format == "json":
        sys.stdout.write(json.dumps(rows) + "\n")
    elif args.format == "table":
        print(format_table(SCORES_HEADER, [[row[h] for h in SCORES_HEADER] for row in rows]))
    else:
        sys.stdout.write(scores_csv(rows))
    return 0
