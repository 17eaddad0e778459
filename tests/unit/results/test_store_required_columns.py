"""A results store whose rows lack what every row has always had (model, lang, epoch, estimate,
run_id, k) is refused by every reader with one line naming the columns and how many rows; a store
recorded before newer columns existed (no base_model, selection, tokenizer_* ...) still reads,
shows and takes new records. A recorded run whose folder is gone says so on its per-problem view."""

from __future__ import annotations

import pytest

from multiplt import cli
from multiplt.errors import MultipltError
from multiplt.results import read_store, record_runs
from multiplt.results.problems import per_problem
from tests.unit.results.test_results_store import make_run

# The columns of the first schema (a6dd37e), as `results record` wrote them then.
FIRST_SCHEMA_ROW = {
    "run_id": "old@1", "dataset": "old", "run_uri": "/runs/old", "model": "org/old", "revision": None,
    "resolved_commit": None, "tokenizer": None, "experiment": None, "lang": "lua", "epoch": 0,
    "benchmark": None, "benchmark_sha256": None, "backend": "replay", "seed": 0, "n": 2,
    "temperature": 0.2, "top_p": 0.95, "max_new_tokens": 128, "k": 1, "estimate": 0.25,
    "num_problems": 4, "min_completions": 2, "max_completions": 2, "created_at": "2025-01-01T00:00:00+00:00",
}


def _write(path, rows: list[dict]) -> str:
    import polars as pl

    pl.DataFrame(rows).write_parquet(path)
    return str(path)


def test_rows_without_a_required_value_are_refused_naming_each_column_and_count(tmp_path, capsys):
    rows = [FIRST_SCHEMA_ROW,
            {**FIRST_SCHEMA_ROW, "run_id": "b@1", "model": None, "epoch": None},
            {**FIRST_SCHEMA_ROW, "run_id": "c@1", "model": None, "estimate": None},
            {**FIRST_SCHEMA_ROW, "run_id": "d@1", "lang": None}]
    store = _write(tmp_path / "bad.parquet", rows)
    before = (tmp_path / "bad.parquet").read_bytes()
    message = (f"{store} is not a well-formed results store: 2 rows with no model, 1 row with no "
               "lang, 1 row with no epoch, 1 row with no estimate (every row needs run_id, k, "
               "model, lang, epoch, estimate)")
    with pytest.raises(MultipltError) as refused:
        read_store(store)
    assert str(refused.value) == message
    # `results show` and `results record` give the same one line; nothing is written over it
    assert cli.main(["results", "show", "--store", store]) == 2
    assert message in capsys.readouterr().err
    run = make_run(tmp_path / "runs")
    assert cli.main(["results", "record", "--scores", run, "--store", store]) == 2
    assert message in capsys.readouterr().err
    assert (tmp_path / "bad.parquet").read_bytes() == before


def test_a_null_key_is_refused_too(tmp_path):
    store = _write(tmp_path / "bad.parquet", [FIRST_SCHEMA_ROW, {**FIRST_SCHEMA_ROW, "k": None}])
    with pytest.raises(MultipltError, match="1 row with no k "):
        read_store(store)


def test_a_store_of_the_first_schema_reads_and_takes_new_records(tmp_path):
    """Its rows have no value in the columns added since (base_model, selection, tokenizer_*):
    those are not required."""
    store = _write(tmp_path / "old.parquet", [FIRST_SCHEMA_ROW])
    table = read_store(store)
    assert table.height == 1 and table["base_model"].to_list() == [None]
    assert table["selection"].to_list() == [None] and table["tokenizer_revision"].to_list() == [None]
    summary = record_runs([make_run(tmp_path / "runs")], store)
    assert summary["added"] == 1 and summary["rows"] == 2
    assert sorted(read_store(store)["model"].to_list()) == ["org/old", "org/tiny"]


def test_a_run_folder_that_is_gone_is_named_as_gone(tmp_path):
    folder = tmp_path / "runs" / "humaneval-lua-m"
    with pytest.raises(MultipltError) as gone:
        per_problem(f"file://{folder}")
    assert str(gone.value) == (f"run folder file://{folder} does not exist (moved or removed since "
                               "the run was recorded)")
    folder.mkdir(parents=True)
    (folder / "_scores.csv").write_text("")
    with pytest.raises(MultipltError, match=r"has no \*\.results\.json\.gz files \(was it executed\?\)"):
        per_problem(f"file://{folder}")
