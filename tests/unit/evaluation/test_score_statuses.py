"""`multiplt score` says how the samples ended: the status counts and the timeout limits their
results record, in its log (with a warning when most samples timed out, or when they ran under
more than one limit), in its rows (the JSON output) and in the per-problem table; the results
store's rows (run_record) carry the same counts, so an all-Timeout 0.0 is told from a real one."""

from __future__ import annotations

import gzip
import json
import logging
import pathlib

import polars as pl
import yaml

from multiplt import cli
from multiplt.evaluation import passk
from multiplt.results.run_record import STATUS_COLUMNS, load_run_rows


def write_run(folder: pathlib.Path, results: dict[str, list[tuple[str, float | None]]]) -> str:
    """A run folder with one completions and results file per problem ((status, timeout) per
    sample: a None timeout is not written, as in MultiPL-E's results) and its run record."""
    folder.mkdir(parents=True)
    for name, samples in results.items():
        doc = {"name": name, "language": "py", "prompt": "p\n", "tests": "t\n",
               "completions": [f"c{i}" for i in range(len(samples))]}
        rows = [{"program": f"p{i}", "stdout": "", "stderr": "", "status": status,
                 "exit_code": 0 if status == "OK" else -1 if status == "Timeout" else 1,
                 "timestamp": 1, **({} if limit is None else {"timeout": limit})}
                for i, (status, limit) in enumerate(samples)]
        (folder / f"{name}.json.gz").write_bytes(gzip.compress(json.dumps(doc).encode()))
        (folder / f"{name}.results.json.gz").write_bytes(
            gzip.compress(json.dumps({**doc, "results": rows}).encode()))
    n = max(len(s) for s in results.values())
    (folder / "_multiplt_run.yaml").write_text(yaml.safe_dump(
        {"model": "m", "lang": "py", "n": n, "complete": True, "problems": sorted(results)}))
    return str(folder)


LOADED = {"A": [("Timeout", 15.0)] * 3 + [("OK", 15.0)],
          "B": [("Timeout", 15.0)] * 3 + [("AssertionError", 15.0)]}


def test_score_logs_and_writes_the_status_counts_and_the_timeout_limit(tmp_path, capsys):
    run = write_run(tmp_path / "loaded", LOADED)
    capsys.readouterr()
    assert cli.main(["score", "--in", run, "--format", "json", "-k", "1,4"]) == 0
    out, err = capsys.readouterr()
    rows = json.loads(out)
    assert [(r["Pass@k"], r["Estimate"], r["Timeouts"], r["Statuses"], r["TimeoutLimits"])
            for r in rows] == [(1, 0.125, 6, {"Timeout": 6, "AssertionError": 1, "OK": 1}, [15.0]),
                               (4, 0.5, 6, {"Timeout": 6, "AssertionError": 1, "OK": 1}, [15.0])]
    lines = [line.split(" multiplt.evaluation: ", 1)[-1] for line in err.splitlines()]
    assert "score: statuses of the 8 scored samples: Timeout 6, AssertionError 1, OK 1" in lines
    assert "score: timeout limits of the scored samples: 15 s (8)" in lines
    (warning,) = [line for line in err.splitlines() if " WARNING " in line]
    assert f"score: 6 of the 8 scored samples of {run} timed out (limit 15 s)" in warning
    table = pl.read_parquet(pathlib.Path(run) / "_per_problem.parquet")
    assert table.select("problem", "timeouts", "min_timeout_s", "max_timeout_s").rows() == [
        ("A", 3, 15.0, 15.0), ("B", 3, 15.0, 15.0)]


def test_results_of_several_timeout_limits_are_warned_of(tmp_path, caplog):
    run = write_run(tmp_path / "mixed", {"A": [("OK", 5.0), ("Timeout", 5.0)],
                                         "B": [("OK", 15), ("AssertionError", 15)],
                                         "C": [("OK", None), ("OK", None)]})
    with caplog.at_level(logging.INFO, logger="multiplt.evaluation"):
        rows = passk.score(run)
    assert (rows[0]["Timeouts"], rows[0]["TimeoutLimits"]) == (1, [5.0, 15.0])
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert "score: timeout limits of the scored samples: 5 s (2), 15 s (2); 2 record no timeout" in info
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(f"score: the scored samples of {run} ran under 2 different timeout "
                              "limits (5 s (2), 15 s (2)): their Timeouts are not comparable")
    assert "--timeout S` with S >= 15 s" in warning
    table = pl.read_parquet(pathlib.Path(run) / "_per_problem.parquet")
    assert table.select("timeouts", "min_timeout_s", "max_timeout_s").rows() == [
        (1, 5.0, 5.0), (0, 15.0, 15.0), (0, None, None)]


def test_the_results_row_carries_the_timeout_count_and_limits(tmp_path, capsys):
    run = write_run(tmp_path / "loaded", LOADED)
    passk.score(run, ks=(1, 4))
    rows = load_run_rows(run)
    assert [(r["k"], r["estimate"], *(r[c] for c in STATUS_COLUMNS)) for r in rows] == [
        (1, 0.125, '{"Timeout": 6, "AssertionError": 1, "OK": 1}', 6, 15.0, 15.0),
        (4, 0.5, '{"Timeout": 6, "AssertionError": 1, "OK": 1}', 6, 15.0, 15.0)]
    # recorded into a store and read back: the existing columns are as they were
    store = tmp_path / "results.parquet"
    assert cli.main(["results", "record", "--scores", run, "--store", str(store)]) == 0
    table = pl.read_parquet(store)
    assert table.select("k", "estimate", "num_problems").rows() == [(1, 0.125, 2), (4, 0.5, 2)]
    # and the status columns survive into the store (its schema lists them)
    assert table.select(*STATUS_COLUMNS).rows() == [
        ('{"Timeout": 6, "AssertionError": 1, "OK": 1}', 6, 15.0, 15.0)] * 2


def test_a_folder_of_scores_alone_has_null_status_columns(tmp_path):
    run = write_run(tmp_path / "loaded", LOADED)
    passk.score(run)
    for path in pathlib.Path(run).glob("*.json.gz"):
        path.unlink()
    (row,) = load_run_rows(run)
    assert [row[c] for c in STATUS_COLUMNS] == [None] * 4 and row["estimate"] == 0.125

