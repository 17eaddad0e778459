"""The columns of the results store and their types: the contract the leaderboard reads.

One row is one (scored run, k). ``run_id`` names the run: the run folder name (the ``Dataset``
column of the pass@k CSV) plus a short hash of the resolved run config, so the same folder
recorded twice keeps one row per k, while a rerun with another config gets its own rows.
"""

from __future__ import annotations

# name -> polars dtype name (resolved lazily so that importing this module needs no polars)
COLUMNS: dict[str, str] = {
    "run_id": "String",
    "dataset": "String",          # run folder name, = the Dataset column of _scores.csv
    "run_uri": "String",          # where the run folder lives
    "model": "String",            # a checkpoint's training output, however generate loaded it
    "revision": "String",         # (--revision TAG or OUT/checkpoints/TAG): then its tag
    "resolved_commit": "String",
    "tokenizer": "String",         # generate's --tokenizer, as the run record names it (null: the model's own)
    "tokenizer_revision": "String",  # its --tokenizer-revision, where one was given or a rerun pinned it
    "tokenizer_resolved_commit": "String",  # what the backend resolved that tokenizer to (a Hub commit)
    "experiment": "String",
    "lang": "String",
    "epoch": "Int64",             # 0 for a base model; a checkpoint's from its training manifest
    "base_model": "String",       # a checkpoint's: the base its training manifest row names (as
                                  # `train --base` took it); null for other runs and in rows
                                  # recorded before the column (base_model.checkpoint_base)
    "benchmark": "String",
    "benchmark_sha256": "String",
    "selection": "String",        # the part of the benchmark file the run covered: "" all of it,
                                  # else _first<N>/_p<hash>[_partial] (null: recorded before it)
    "backend": "String",
    "seed": "Int64",
    "n": "Int64",
    "temperature": "Float64",
    "top_p": "Float64",
    "max_new_tokens": "Int64",
    "k": "Int64",
    "estimate": "Float64",        # pass@k, a fraction in [0, 1]
    "num_problems": "Int64",
    "min_completions": "Int64",
    "max_completions": "Int64",
    "statuses": "String",         # the run's samples by status, as JSON ({"OK": 120, "Timeout": 3})
    "timeouts": "Int64",          # how many of its samples timed out (load can cause it)
    "min_timeout_s": "Float64",   # the least and most wall-clock limit its results ran under
    "max_timeout_s": "Float64",   # (null: results without one, and rows recorded before them)
    "code_version": "String",     # the code that drew the run's samples: its run record's
                                  # provenance (a git commit, `-dirty` with uncommitted changes,
                                  # or an image's MULTIPLT_CODE_VERSION); null: a record without
                                  # one, and rows recorded before the column
    "created_at": "String",       # ISO 8601 UTC, when the run was first recorded
}

# A row is identified by these; recording again replaces the row (never duplicates it).
KEY = ("run_id", "k")


def polars_schema() -> dict:
    import polars as pl

    return {name: getattr(pl, dtype) for name, dtype in COLUMNS.items()}
