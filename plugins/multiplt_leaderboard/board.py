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
    language holding that run's pass@k and run_id (the latest recording wins when a run was
    repeated)."""
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
                                       "n": row["n"], "run_id": row["run_id"]}
    ordered = sorted(entries.values(), key=lambda e: (e["model"], e["revision"] or "",
                                                      e["experiment"] or "", e["epoch"]))
    return languages, ordered


def series_label(lang: str, experiment: str | None, model: str) -> str:
    return f"{lang} ({experiment}) · {model}" if experiment else f"{lang} · {model}"


def epoch_series(rows: list[dict], k: int = 1) -> dict[str, list[tuple[int, float]]]:
    """pass@k by epoch per line: one line per language, experiment and model, so two models
    never share a line. A base model evaluated only at epoch 0 starts the lines of the other
    models of its language and experiment (the fine-tuned checkpoints) when it is the only
    such base there; otherwise it is a line (a point) of its own."""
    points: dict[tuple, dict[int, float]] = {}
    for row in rows:
        if row["k"] != k:
            continue
        key = (row["lang"], row["experiment"] or "", row["model"])
        points.setdefault(key, {})[row["epoch"]] = row["estimate"]
    bases: dict[tuple, list[tuple]] = {}
    for key, by_epoch in points.items():
        if set(by_epoch) == {0}:
            bases.setdefault(key[:2], []).append(key)
    series = {}
    for key, by_epoch in sorted(points.items()):
        group = bases.get(key[:2], [])
        tuned = [other for other in points if other[:2] == key[:2] and set(points[other]) - {0}]
        if key in group and len(group) == 1 and tuned:
            continue  # drawn as the first point of the tuned lines
        if len(group) == 1 and key in tuned and 0 not in by_epoch:
            by_epoch = {0: points[group[0]][0], **by_epoch}
        series[series_label(key[0], key[1] or None, key[2])] = sorted(by_epoch.items())
    return series
