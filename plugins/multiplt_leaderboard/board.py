"""Shape results-store rows for the leaderboard: one benchmark at a time, one row per model x
epoch, one column per language. Scores on different benchmarks (the full HumanEval, a
`--limit`/`--problems` part of it, another source) never share a cell or a line. A cell keeps
how many of its run's samples timed out (timeout_note), so the page can tell a score lowered by
a loaded machine from a model that fails the tests."""

from __future__ import annotations

import json

# what the board and /api/results read of each row: the statuses of the run's samples, its
# timeout limits and the version of the code that drew them included (null in older rows)
ROW_FIELDS = ("model", "revision", "experiment", "lang", "epoch", "k", "estimate", "num_problems",
              "n", "temperature", "benchmark", "dataset", "selection", "created_at", "run_id",
              "base_model", "statuses", "timeouts", "min_timeout_s", "max_timeout_s", "code_version")


def load_rows(store_uri: str) -> list[dict]:
    """The store's rows (selected fields), oldest first; empty when nothing was recorded yet."""
    from multiplt import storage
    from multiplt.results import read_store

    if not store_uri or not storage.exists(store_uri):
        return []
    table = read_store(store_uri).select(list(ROW_FIELDS)).sort("created_at", nulls_last=False)
    return table.to_dicts()


def statuses_of(row: dict) -> dict[str, int] | None:
    """The row's `statuses` ({status: samples}, in the store's order: most first), or None where
    it has none (rows recorded before the column, runs without results files) or it is not such
    a JSON object."""
    text = row.get("statuses")
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in value.values()):
        return None
    return value


def timeout_note(row: dict) -> dict | None:
    """What a score's reader needs to know of its run's timed-out samples: {"timeouts", "samples"
    (all the samples the row counts; None when its statuses are unknown), "min_timeout_s",
    "max_timeout_s" (None when unrecorded), "most" (more than half of the samples timed out)}; None
    when none timed out or the row does not say (null `timeouts`: recorded before the column)."""
    timeouts = row.get("timeouts")
    if not isinstance(timeouts, int) or isinstance(timeouts, bool) or timeouts <= 0:
        return None
    statuses = statuses_of(row)
    samples = sum(statuses.values()) if statuses else None
    return {"timeouts": timeouts, "samples": samples, "min_timeout_s": row.get("min_timeout_s"),
            "max_timeout_s": row.get("max_timeout_s"),
            "most": samples is not None and 2 * timeouts > samples}


def k_values(rows: list[dict]) -> list[int]:
    return sorted({r["k"] for r in rows})


def benchmark_of(row: dict) -> str:
    """The row's benchmark as one name for every language (`humaneval`, `humaneval_first5`;
    multiplt.results.benchmarks.benchmark_name); "" for rows recorded without one."""
    from multiplt.results.benchmarks import benchmark_name

    return benchmark_name(row)


def benchmarks(rows: list[dict]) -> list[dict]:
    """[{"name", "rows", "num_problems"}] per benchmark in the rows, the default first: the most
    rows, ties broken by the most problems (the largest num_problems of its rows), then by name."""
    found: dict[str, dict] = {}
    for row in rows:
        b = found.setdefault(benchmark_of(row), {"name": benchmark_of(row), "rows": 0, "num_problems": None})
        b["rows"] += 1
        if row.get("num_problems") is not None:
            b["num_problems"] = max(b["num_problems"] or 0, row["num_problems"])
    return sorted(found.values(), key=lambda b: (-b["rows"], -(b["num_problems"] or 0), b["name"]))


def default_benchmark(rows: list[dict]) -> str | None:
    """The benchmark the leaderboard shows unless asked for another; None when there are no rows."""
    found = benchmarks(rows)
    return found[0]["name"] if found else None


def of_benchmark(rows: list[dict], benchmark: str | None = None) -> list[dict]:
    """The rows of one benchmark (None: the default one)."""
    if benchmark is None:
        benchmark = default_benchmark(rows)
    return [r for r in rows if benchmark_of(r) == benchmark]


def _entry_key(row: dict) -> tuple:
    return (row["model"], row["revision"] or "", row["experiment"] or "", row["epoch"])


def board(rows: list[dict], k: int, benchmark: str | None = None) -> tuple[list[str], list[dict]]:
    """(languages, entries) of one benchmark (None: the default one): an entry per (model,
    revision, experiment, epoch) with a cell per language holding that run's pass@k and run_id
    (the latest recording wins when a run was repeated, e.g. at another n) and its timed-out
    samples (timeout_note: None when none or unknown), ordered by model,
    experiment, epoch (as a number), then revision."""
    rows = of_benchmark(rows, benchmark)
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
                                       "n": row["n"], "run_id": row["run_id"],
                                       "timeouts": timeout_note(row)}
    # a model's epochs in order (2 before 10: the revision tags LANG-EXP-epochN sort as text)
    ordered = sorted(entries.values(), key=lambda e: (e["model"], e["experiment"] or "", e["epoch"],
                                                      e["revision"] or ""))
    return languages, ordered


def series_label(lang: str, experiment: str | None, model: str) -> str:
    return f"{lang} ({experiment}) · {model}" if experiment else f"{lang} · {model}"


def _base_of(key: tuple, bases: list[tuple], base_model: str | None) -> tuple | None:
    """The base a fine-tuned line (lang, experiment, model) starts from, among `bases` (the lines
    of its language and experiment evaluated only at epoch 0). With `base_model` (the results
    store's column: the base its training manifest names) the base line of that model
    (compared as multiplt.results.base_model.model_identity spells them), else none. Without it
    (rows recorded before the column, or whose manifest could not be read): the one its training
    output's name names (multiplt_finetune writes `<base>-<experiment>-<lang>`, the base id made
    safe as run folder names are: safe_part), else the only such base, else none."""
    from multiplt.evaluation.run_folder import safe_part
    from multiplt.results.base_model import model_identity

    lang, experiment, model = key
    if base_model:
        wanted = model_identity(base_model)
        named = [base for base in bases if model_identity(base[2]) == wanted]
        return named[0] if named else None
    name, suffix = model.rstrip("/").rsplit("/", 1)[-1], f"-{experiment}-{lang}"
    if experiment and name.endswith(suffix):
        named = [base for base in bases if safe_part(base[2]) == name[:-len(suffix)]]
        if len(named) == 1:
            return named[0]
    return bases[0] if len(bases) == 1 else None


def epoch_series(rows: list[dict], k: int = 1,
                 benchmark: str | None = None) -> dict[str, list[tuple[int, float]]]:
    """pass@k by epoch on one benchmark (None: the default one) per line: one line per language,
    experiment and model, so two models never share a line. A base model evaluated only at
    epoch 0 starts the lines of the fine-tuned checkpoints of its language and experiment that
    were trained from it (their rows' `base_model`, from their training manifests); for rows
    without one, those whose training output is named after it
    (`<base>-<experiment>-<lang>`, as multiplt_finetune names it), or all of them when it is
    the only such base there. A base that starts no line is a line (a point) of its own."""
    points: dict[tuple, dict[int, float]] = {}
    based: dict[tuple, str] = {}  # line -> the base model its rows name (the latest recorded)
    for row in of_benchmark(rows, benchmark):  # oldest first, so later recordings overwrite
        if row["k"] != k:
            continue
        key = (row["lang"], row["experiment"] or "", row["model"])
        points.setdefault(key, {})[row["epoch"]] = row["estimate"]
        if row.get("base_model"):
            based[key] = row["base_model"]
    bases: dict[tuple, list[tuple]] = {}
    for key, by_epoch in points.items():
        if set(by_epoch) == {0}:
            bases.setdefault(key[:2], []).append(key)
    starts = {}  # fine-tuned line -> its base
    for key, by_epoch in points.items():
        if set(by_epoch) - {0} and 0 not in by_epoch:
            base = _base_of(key, sorted(bases.get(key[:2], [])), based.get(key))
            if base is not None:
                starts[key] = base
    series = {}
    for key, by_epoch in sorted(points.items()):
        if key in starts.values():
            continue  # drawn as the first point of the tuned lines
        if key in starts:
            by_epoch = {0: points[starts[key]][0], **by_epoch}
        series[series_label(key[0], key[1] or None, key[2])] = sorted(by_epoch.items())
    return series
