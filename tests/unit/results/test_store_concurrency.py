"""Recording into an S3 results store while other runs record into it: conditional writes
(If-Match the ETag read, If-None-Match for a new store) lose no row, a writer that loses the race
reads, merges and writes again, a store that keeps changing is a retryable error (exit 3) with
nothing recorded, and a server without conditional writes falls back to write-then-check."""

from __future__ import annotations

import logging
import threading

import pytest

from multiplt import cli, storage
from multiplt.errors import PlatformError
from multiplt.results import read_store, record_runs
from multiplt.results import store as results_store
from tests.unit.results.test_results_store import make_run, record_in_processes

LANGS = ("rkt", "lua", "r", "jl", "ml", "py")


def record_all_at_once(runs: list[str], store: str) -> list:
    """record_runs of every run, each in its own thread, all let go at the same moment."""
    start = threading.Barrier(len(runs))
    outcomes: list = [None] * len(runs)

    def record(i: int) -> None:
        start.wait()
        try:
            outcomes[i] = record_runs([runs[i]], store)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcomes[i] = exc

    threads = [threading.Thread(target=record, args=(i,)) for i in range(len(runs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def lose_the_race_once(monkeypatch, other_run: str, store: str) -> list:
    """Make the next record_runs lose the race once: between its read and its first write,
    `other_run` is recorded into `store`. The ETags that record_runs writes on, in order."""
    real = storage.write_bytes_if
    tries: list = []

    def another_writer_first(uri, data, etag):
        tries.append(etag)
        if len(tries) == 1:
            monkeypatch.setattr(storage, "write_bytes_if", real)
            record_runs([other_run], store)  # the other writer, unhindered
            monkeypatch.setattr(storage, "write_bytes_if", another_writer_first)
        return real(uri, data, etag)

    monkeypatch.setattr(storage, "write_bytes_if", another_writer_first)
    return tries


def test_runs_recorded_at_once_into_an_s3_store_all_stay(s3_bucket, tmp_path):
    runs = [make_run(tmp_path / "runs", lang=lang) for lang in LANGS]
    for trial in range(4):
        store = f"{s3_bucket}/results/trial{trial}.parquet"
        outcomes = record_all_at_once(runs, store)
        assert all(isinstance(o, dict) and o["added"] == 1 for o in outcomes), outcomes
        table = read_store(store)
        assert sorted(table["lang"].to_list()) == sorted(LANGS), f"trial {trial}: {table['lang'].to_list()}"
        # the last writer saw every row, and nobody saw more
        assert max(o["rows"] for o in outcomes) == len(LANGS)


@pytest.mark.slow
def test_record_commands_at_once_into_an_s3_store_lose_no_rows(s3_bucket, tmp_path):
    """The reviewer's repro: separate `multiplt results record` processes (as the DAG's tasks)."""
    runs = [make_run(tmp_path / "runs", lang=lang) for lang in LANGS[:4]]
    for trial in range(2):
        store = f"{s3_bucket}/results/procs{trial}.parquet"
        record_in_processes(runs, store)
        assert read_store(store).height == len(runs)


def test_a_writer_that_loses_the_race_merges_again(s3_bucket, tmp_path, monkeypatch, caplog):
    store = f"{s3_bucket}/results.parquet"
    first, mine, other = (make_run(tmp_path / "runs", lang=lang) for lang in ("rkt", "lua", "r"))
    record_runs([first], store)
    tries = lose_the_race_once(monkeypatch, other, store)
    caplog.set_level(logging.INFO, "multiplt.results")
    summary = record_runs([mine], store)
    assert len(tries) == 2 and tries[0] != tries[1]  # refused (412), then written on the new ETag
    assert summary["added"] == 1 and summary["rows"] == 3
    assert sorted(read_store(store)["lang"].to_list()) == ["lua", "r", "rkt"]
    assert "changed since it was read (attempt 1 of" in caplog.text


def test_a_new_store_created_by_another_writer_first_is_merged_into(s3_bucket, tmp_path, monkeypatch):
    """The store did not exist when read: If-None-Match: * fails once the other writer made it."""
    store = f"{s3_bucket}/new.parquet"
    mine, other = (make_run(tmp_path / "runs", lang=lang) for lang in ("rkt", "lua"))
    tries = lose_the_race_once(monkeypatch, other, store)
    assert record_runs([mine], store)["rows"] == 2
    assert tries[0] is None and tries[1] is not None
    assert sorted(read_store(store)["lang"].to_list()) == ["lua", "rkt"]


def test_a_store_that_keeps_changing_is_a_retryable_error_recording_nothing(s3_bucket, tmp_path, monkeypatch,
                                                                            capsys):
    store = f"{s3_bucket}/busy.parquet"
    record_runs([make_run(tmp_path / "runs", lang="rkt")], store)
    before = storage.read_bytes(store)
    attempts = []
    monkeypatch.setattr(results_store, "CONDITIONAL_ATTEMPTS", 3)
    monkeypatch.setattr(results_store, "BACKOFF_S", 0.0)
    monkeypatch.setattr(storage, "write_bytes_if", lambda uri, data, etag: attempts.append(etag) or False)
    run = make_run(tmp_path / "runs", lang="lua")
    with pytest.raises(PlatformError, match=rf"^results store {store}: other writers replaced the table "
                                            r"on each of 3 attempts to record; nothing recorded, retry later$"):
        record_runs([run], store)
    assert len(attempts) == 3
    assert cli.main(["results", "record", "--scores", run, "--store", store]) == 3
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"multiplt results: error: results store {store}:")
    assert storage.read_bytes(store) == before


def test_a_server_without_conditional_writes_falls_back_with_a_warning(s3_bucket, tmp_path, monkeypatch, caplog):
    store = f"{s3_bucket}/old-minio.parquet"

    def not_implemented(uri, data, etag):
        raise storage.ConditionalWriteUnsupported(f"the S3 server refused a conditional write to {uri} "
                                                  "(NotImplemented): it does not support If-Match/If-None-Match on PUT")

    monkeypatch.setattr(storage, "write_bytes_if", not_implemented)
    for lang in ("rkt", "lua"):
        assert record_runs([make_run(tmp_path / "runs", lang=lang)], store)["added"] == 1
    assert sorted(read_store(store)["lang"].to_list()) == ["lua", "rkt"]
    assert "does not support If-Match/If-None-Match on PUT; recording without them" in caplog.text
    assert "may lose rows" in caplog.text


def test_a_local_store_keeps_its_lock_and_plain_write(tmp_path, monkeypatch):
    """Local stores are written under their flock, never through the conditional write."""
    monkeypatch.setattr(storage, "write_bytes_if", lambda *a: pytest.fail("conditional write on a local store"))
    store = tmp_path / "results.parquet"
    assert record_runs([make_run(tmp_path / "runs")], str(store))["added"] == 1
    assert (tmp_path / "results.parquet.lock").exists()
