"""The chain under dag.test() (issue 20, points 1 and 2): a stage that keeps no row ends its run
with the reason in the task log, skipped rather than failed and not retried, and emits no Asset
event; a stage that keeps rows emits one whose extra names the URI, identity and rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures import translate as fx
from tests.support.airflow import load_dag
from tests.integration.test_testgen import FIXTURE as TESTGEN_FIXTURE
from tests.integration.test_testgen import functions_parquet

pytestmark = pytest.mark.e2e


def same_data_uri(airflow_db, monkeypatch) -> str:
    """One data_uri for every run of this session's database: an Asset (name and URI) registered
    by one test's DAG with another URI would not be updated (each test passes its own `out`)."""
    data_uri = f"file://{airflow_db}/chain-data"
    monkeypatch.setenv("AIRFLOW__MULTIPLT__DATA_URI", data_uri)
    return data_uri


def task_states(run) -> dict[str, set]:
    out: dict[str, set] = {}
    for ti in run.get_task_instances():
        out.setdefault(ti.task_id, set()).add((ti.state, ti.try_number))
    return out


def asset_events(run) -> list[tuple[str, dict]]:
    """(asset name, extra) of every Asset event this run emitted, from the Airflow database."""
    from sqlalchemy import select

    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(
            AssetEvent.source_dag_id == run.dag_id, AssetEvent.source_run_id == run.run_id)).all()
        return [(e.asset.name, dict(e.extra or {})) for e in events]


def test_testgen_that_keeps_no_test_is_skipped_with_its_reason(airflow_db, tmp_path, monkeypatch, capfd):
    """A model that writes no passing assert: every stage succeeds, `announce` is skipped with
    the reason (no retry), the run succeeds and no tests event starts multiplt_translate."""
    same_data_uri(airflow_db, monkeypatch)
    rows = [json.loads(line) for line in (TESTGEN_FIXTURE / "functions.jsonl").read_text().splitlines()][:2]
    functions = functions_parquet(tmp_path, rows)
    replay = tmp_path / "wrong.jsonl"
    replay.write_text("".join(json.dumps({"name": r["sha1"], "completion": "None) == object()\n"}) + "\n"
                              for r in rows for _ in range(2)))
    dag = load_dag("multiplt_testgen")
    run = dag.test(run_conf={"functions": functions + "/functions", "out": str(tmp_path / "tg"),
                             "backend": "replay",
                             "replay_source": str(replay), "n": 2, "shards": 1})
    assert run.state == "success"
    states = task_states(run)
    assert states["write"] == {("success", 1)}
    assert states["announce"] == {("skipped", 1)}
    logs = capfd.readouterr()
    assert "testgen kept 0 rows: nothing announced" in logs.out + logs.err
    assert asset_events(run) == []


def test_testgen_started_by_hand_on_functions_with_no_row_is_skipped(airflow_db, tmp_path, monkeypatch, capfd):
    """`multiplt testgen` refuses a functions dataset without rows (exit 2); the DAG run ends at
    `plan` with the reason instead: nothing fails, nothing runs, nothing is announced."""
    import polars as pl

    same_data_uri(airflow_db, monkeypatch)
    (tmp_path / "corpus" / "functions").mkdir(parents=True)
    pl.read_ndjson(TESTGEN_FIXTURE / "functions.jsonl").clear().write_parquet(
        tmp_path / "corpus" / "functions" / "part-00000.parquet")
    run = load_dag("multiplt_testgen").test(run_conf={
        "functions": str(tmp_path / "corpus"), "out": str(tmp_path / "tg"), "backend": "replay",
        "replay_source": str(TESTGEN_FIXTURE / "replay.jsonl"), "n": 1, "shards": 1})
    assert run.state == "success"
    states = task_states(run)
    assert states["plan"] == {("skipped", 1)}
    assert {s for task in ("generate", "write", "announce") for s, _ in states[task]} == {"skipped"}
    logs = capfd.readouterr()
    assert f"nothing to do: the functions dataset {tmp_path / 'corpus'} has 0 rows" in logs.out + logs.err
    assert asset_events(run) == [] and not (tmp_path / "tg").exists()


def test_translate_language_with_no_kept_row_is_not_announced(airflow_db, tmp_path, monkeypatch, capfd):
    same_data_uri(airflow_db, monkeypatch)
    inputs = fx.write(tmp_path / "in")
    replay = Path(inputs["replay"].replace("{lang}", "lua"))
    wrong = [json.dumps({**json.loads(line), "completion": "    return nil\nend\n"})
             for line in replay.read_text().splitlines()]
    replay.write_text("\n".join(wrong) + "\n")
    dag = load_dag("multiplt_translate")
    run = dag.test(run_conf={"languages": ["lua"], "shards": 1, "n": fx.N, "timeout": fx.TIMEOUT,
                             "backend": "replay",
                             "replay_source": inputs["replay"], "tests": inputs["tests"],
                             "out": f"file://{tmp_path}/translate"})
    assert run.state == "success"
    states = task_states(run)
    assert states["summary"] == {("success", 1)}
    assert states["announce_lua"] == {("skipped", 1)}
    logs = capfd.readouterr()
    assert "translate lua kept 0 rows: nothing announced" in logs.out + logs.err
    assert asset_events(run) == []


def test_translate_started_by_hand_on_tests_with_no_row_is_skipped(airflow_db, tmp_path, monkeypatch, capfd):
    """`multiplt translate` refuses an empty tests dataset (exit 2); the DAG run ends at `plan`
    with the reason instead: nothing fails, nothing runs, nothing is announced."""
    import polars as pl

    same_data_uri(airflow_db, monkeypatch)
    (tmp_path / "tests").mkdir()
    pl.DataFrame(fx.ROWS).clear().write_parquet(tmp_path / "tests" / "part-0.parquet")
    run = load_dag("multiplt_translate").test(run_conf={
        "languages": ["lua"], "shards": 1, "n": 1, "backend": "replay",
        "replay_source": str(tmp_path / "none.jsonl"), "tests": str(tmp_path),
        "out": f"file://{tmp_path}/translate"})
    assert run.state == "success"
    states = task_states(run)
    assert states["plan"] == {("skipped", 1)}
    assert {s for task in ("sample", "summary", "announce_lua") for s, _ in states[task]} == {"skipped"}
    logs = capfd.readouterr()
    assert f"nothing to do: the tests dataset {tmp_path} has 0 rows" in logs.out + logs.err
    assert asset_events(run) == []


def test_translate_announces_the_dataset_uri_language_and_rows(airflow_db, tmp_path, monkeypatch):
    same_data_uri(airflow_db, monkeypatch)
    inputs = fx.write(tmp_path / "in")
    dag = load_dag("multiplt_translate")
    run = dag.test(run_conf={"languages": ["lua"], "shards": 1, "n": fx.N, "timeout": fx.TIMEOUT,
                             "backend": "replay",
                             "replay_source": inputs["replay"], "tests": inputs["tests"],
                             "out": f"file://{tmp_path}/translate"})
    assert run.state == "success"
    [(name, extra)] = asset_events(run)
    assert name == "multiplt_dataset_lua"
    assert {k: extra[k] for k in ("dataset_uri", "lang", "split", "rows", "tests_uri")} == {
        "dataset_uri": f"file://{tmp_path}/translate", "lang": "lua", "split": "lua",
        "rows": len(fx.kept("lua")), "tests_uri": inputs["tests"]}


def test_corpus_announces_where_its_functions_are_or_nothing_when_none_is_kept(
        airflow_db, tmp_path, monkeypatch, capfd):
    """The event's `functions_uri` is `<out>/functions` (not the Asset's URI) and `rows` its
    row count; a corpus whose every function is filtered out is not announced."""
    import polars as pl

    from tests.integration.test_corpus_build import planted_corpus

    same_data_uri(airflow_db, monkeypatch)
    dag = load_dag("multiplt_corpus")
    out = tmp_path / "corpus"
    run = dag.test(run_conf={"source": str(planted_corpus(tmp_path)), "out": str(out), "shards": 1,
                             "dedup_buckets": 1})
    assert run.state == "success"
    [(name, extra)] = asset_events(run)
    kept = pl.read_parquet(sorted((out / "functions").glob("*.parquet")))
    assert name == "multiplt_corpus_functions" and kept.height > 0
    assert {k: extra[k] for k in ("functions_uri", "rows", "source")} == {
        "functions_uri": f"{out}/functions", "rows": kept.height, "source": str(tmp_path / "planted")}

    nothing = tmp_path / "nothing"
    nothing.mkdir()
    (nothing / "m.py").write_text("def f(x):\n    return x\n")  # no docstring: dropped
    run = dag.test(run_conf={"source": str(nothing), "out": str(tmp_path / "none"), "shards": 1,
                             "dedup_buckets": 1})
    assert run.state == "success"
    assert task_states(run)["announce"] == {("skipped", 1)}
    logs = capfd.readouterr()
    assert "corpus kept 0 rows: nothing announced" in logs.out + logs.err
    assert asset_events(run) == []
