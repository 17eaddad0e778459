"""`multiplt results record|show`: the results store behind the leaderboard."""

from __future__ import annotations

import argparse
import json
import sys

from multiplt.errors import MultipltError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "results", help="record scored runs in the results store, or show it",
        description="The results store: one parquet table of scored runs (pass@k per model, "
        "language, epoch), read by the leaderboard.")
    sub = parser.add_subparsers(dest="results_command", metavar="ACTION", required=True)

    record = sub.add_parser(
        "record", help="append scored run folders to the results store",
        description="Reads the scores (_scores.csv) and run config (_multiplt_run.yaml) of each run folder and appends one "
        "row per k to the store. Recording a run again replaces its rows instead of duplicating them; "
        "a run given twice is recorded once. A run on part of its benchmark (generate --limit or "
        "--problems, a benchmark file built with --limit or --problems) counts as a benchmark of its own "
        "(humaneval_first5, humaneval_p<hash>). A checkpoint's rows name the base model its training "
        "manifest names (base_model), by which the leaderboard pairs it with that base's run. Logs the "
        "rows read, recorded and skipped; prints "
        "{\"added\", \"replaced\", \"rows\"} as one JSON line. A scores file that is not what `multiplt score` "
        "computes from the folder's results files now (the folder changed after it was scored) is "
        "refused: score it again.")
    record.add_argument("--scores", action="append", required=True, metavar="RUN_FOLDER_URI",
                        help="a scored run folder (repeatable)")
    record.add_argument("--store", required=True, metavar="STORE_URI", help="the results parquet file")
    record.add_argument("--experiment", help="override the run's experiment label (a-z, 0-9 and _, "
                        "as train's --experiment; a run recorded under another experiment gets rows "
                        "of its own: a base model's run folder is shared by the experiments that "
                        "evaluate it)")
    record.add_argument("--epoch", type=int, help="override the run's epoch (0 = base model); "
                        "recording a run again with another --epoch replaces its rows")
    record.add_argument("--allow-partial", action="store_true",
                        help="record a run that is not wholly scored (its run record says complete: "
                        "false, pass@1 covers fewer problems than generate selected, or a problem has "
                        "fewer results than completions: scored with `score --allow-partial`) under a "
                        "benchmark of its own, NAME_partial; without it such a run is an error")
    record.set_defaults(func=run_record)

    show = sub.add_parser("show", help="print the results store",
                          description="Prints the results store as a table, CSV or JSON lines.")
    show.add_argument("--store", required=True, metavar="STORE_URI")
    show.add_argument("--format", choices=("table", "csv", "jsonl"), default="table")
    show.add_argument("--k", type=int, help="only rows for this k (at least 1)")
    show.set_defaults(func=run_show)


def run_record(args: argparse.Namespace) -> int:
    from multiplt.results.store import record_runs

    summary = record_runs(args.scores, args.store, experiment=args.experiment, epoch=args.epoch,
                          allow_partial=args.allow_partial)
    print(json.dumps({k: summary[k] for k in ("added", "replaced", "rows")}))
    return 0


SHOWN = ["model", "revision", "experiment", "lang", "epoch", "k", "estimate", "num_problems", "n",
         "temperature", "created_at"]


def run_show(args: argparse.Namespace) -> int:
    from multiplt import storage
    from multiplt.evaluation.run_folder import format_table
    from multiplt.results.store import read_store

    if args.k is not None and args.k < 1:  # else an empty table, as if no run had that k
        raise MultipltError(f"--k must be a positive whole number (a pass@k's k), got {args.k}")
    if not storage.exists(args.store):
        raise MultipltError(f"no results store at {args.store}: record a run first")
    table = read_store(args.store)
    if args.k is not None:
        table = table.filter(table["k"] == args.k)
    if args.format == "csv":
        sys.stdout.write(table.write_csv())
    elif args.format == "jsonl":
        for row in table.iter_rows(named=True):
            print(json.dumps(row, default=str))
    else:
        print(format_table(SHOWN, table.select(SHOWN).rows()))
    return 0

