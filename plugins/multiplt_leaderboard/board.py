"""Shape results-store rows for the leaderboard: one row per model x epoch, one column per language."""

from __future__ import annotations

ROW_FIELDS = ("model", "revision", "experiment", "lang", "epoch", "k", "estimate", "num_problems",
              "n", "temperature", "benchmark", "created_at", "run_id")


def load_rows(store_uri: str) -> list[dict]:
    """The store's rows (selected fields), oldest first; empty when nothing was recorded yet."""
    from multiplt import storage
    from multiplt.results import read_store

    if not store_uri or not storage.exists(store_uri):
        return []
    table = read_store(store_uri).select(list(ROW_FIELDS)).sort("created_at", nulls_last=False)
    return table.to_dicts()


def k_values(rows: list[dict]) -> list[int]:
    return sorted({r["k"] for r in rows})


def _entry_key(row: dict) -> tuple:
    return (row["model"], row["revision"] or "", row["experiment"] or "", row["epoch"])


def board(rows: list[dict], k: int) -> tuple[list[str], list[dict]]:
    """(languages, entries): an entry per (model, revision, experiment, epoch) with a cell per
    language holding that run's pass@k (the latest recording wins when a run was repeated)."""
    languages = sorted({r["lang"] for r in rows})
    entries: dict[tuple, dict] = {}
    for row in rows:  # oldest first, so later recordings overwrite
        if row["k"] != k:
            continue
        key = _entry_key(row)
        entry = entries.setdefault(key, {"model": row["model"], "revision": row["revision"],
                                         "experiment": row["experiment"], "epoch": row["epoch"],
                                         "cells": {}})
        entry["cells"][row["lang"]] = {"estimate": row["estimate"], "num_problems": row["num_problems"],
                                       "n": row["n"]}
    ordered = sorted(entries.values(), key=lambda e: (e["model"], e["revision"] or "",
                                                      e["experiment"] or "", e["epoch"]))
    return languages, ordered


def epoch_series(rows: list[dict], k: int = 1) -> dict[str, list[tuple[int, float]]]:
    """pass@k by epoch per line: one line per language and experiment (the base model, epoch 0,
    joins the line of the experiment it was labelled with)."""
    points: dict[str, dict[int, float]] = {}
    for row in rows:
        if row["k"] != k:
            continue
        label = row["lang"] if not row["experiment"] else f"{row['lang']} ({row['experiment']})"
        points.setdefault(label, {})[row["epoch"]] = row["estimate"]
    return {label: sorted(by_epoch.items()) for label, by_epoch in sorted(points.items())}
