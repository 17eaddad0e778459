"""`results record` keeps which tokenizer a run used at which revision: the run record's
`tokenizer`, `tokenizer_revision` (generate's --tokenizer-revision, or the commit a rerun pinned)
and `tokenizer_resolved_commit` (what the backend resolved it to) become the row's columns; a
run with the model's own tokenizer has them null, and a store written before the columns reads
with them null."""

from __future__ import annotations

import polars as pl

from multiplt import storage
from multiplt.results import COLUMNS, read_store, record_runs
from tests.unit.results.test_base_model_column import run_folder

COMMIT = "a" * 40


def test_a_runs_tokenizer_revision_and_commit_are_recorded(tmp_path):
    pinned = run_folder(tmp_path / "runs", "pinned", 0.5, model="org/m", epoch=0, tokenizer="org/tok",
                        tokenizer_revision="v2", tokenizer_resolved_commit=COMMIT)
    own = run_folder(tmp_path / "runs", "own", 0.25, model="org/m2", epoch=0)
    store = str(tmp_path / "results.parquet")
    record_runs([pinned, own], store)
    rows = {r["model"]: r for r in read_store(store).to_dicts()}
    assert (rows["org/m"]["tokenizer"], rows["org/m"]["tokenizer_revision"],
            rows["org/m"]["tokenizer_resolved_commit"]) == ("org/tok", "v2", COMMIT)
    assert (rows["org/m2"]["tokenizer"], rows["org/m2"]["tokenizer_revision"],
            rows["org/m2"]["tokenizer_resolved_commit"]) == (None, None, None)


def test_a_store_written_before_the_columns_reads_them_null(tmp_path):
    store = str(tmp_path / "old.parquet")
    storage.write_parquet(store, pl.DataFrame([{"run_id": "a", "model": "org/a", "tokenizer": "org/tok", "k": 1,
                                                "estimate": 0.1, "lang": "lua", "epoch": 0}]))
    table = read_store(store)
    assert list(table.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert table.row(0, named=True)["tokenizer_revision"] is None
    assert table.row(0, named=True)["tokenizer_resolved_commit"] is None
