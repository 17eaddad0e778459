"""multiplt_translate under dag.test() (issue 15, point 6): the plan, the mapped sample /
validate / collect tasks per (language, shard), the summary, and the dataset Asset of the
translated language only (the other languages' announce tasks are skipped)."""

from __future__ import annotations


import pytest

from tests.fixtures import translate as fx
from tests.support.airflow import load_dag
from tests.integration.test_chain_dag_run import same_data_uri

pytestmark = pytest.mark.e2e


def test_dag_test_translates_lua(airflow_db, tmp_path, monkeypatch):
    import polars as pl

    from multiplt import storage

    same_data_uri(airflow_db, monkeypatch)  # the session's Assets keep the URI they were made with
    out = f"file://{tmp_path}/translate"
    inputs = fx.write(tmp_path / "in")
    dag = load_dag("multiplt_translate")
    conf = {"languages": ["lua"], "shards": 2, "n": fx.N, "timeout": fx.TIMEOUT, "backend": "replay",
            "replay_source": inputs["replay"], "tests": inputs["tests"], "out": out}
    run = dag.test(run_conf=conf)
    assert run.state == "success"
    states = {}
    for ti in run.get_task_instances():
        states.setdefault(ti.task_id, set()).add(ti.state)
    assert states["announce_lua"] == {"success"}
    assert states["announce_rkt"] == {"skipped"}
    assert states["sample"] == states["validate"] == states["collect"] == {"success"}

    files = sorted(u for u in storage.ls(storage.join(out, "data")))
    assert [storage.basename(u) for u in files] == ["lua-00000-of-00002.parquet",
                                                    "lua-00001-of-00002.parquet"]
    df = pl.concat([storage.read_parquet(u) for u in files])
    assert {(r["entrypoint"], r["sample"]) for r in df.iter_rows(named=True)} == fx.kept("lua")
    assert storage.read_json(storage.join(out, "funnel.json"))["lua"]["shards"] == ["0-of-2", "1-of-2"]
