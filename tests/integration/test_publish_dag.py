"""multiplt_publish under dag.test(): a manual run publishes a dataset folder and the results
store through the `multiplt publish` stage tasks to the test Hub, and skips the checkpoints
publication (no repo set) with its reason; without a token every publication is skipped."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
for _path in (str(REPO / "dags"), str(REPO / "plugins")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from tests.integration.test_publish import write_dataset  # noqa: E402
from tests.support.airflow import load_dag  # noqa: E402
from tests.integration.test_publish_checkpoints import record_pass1  # noqa: E402

pytestmark = pytest.mark.slow


def load_publish_dag(store: str, monkeypatch):
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RESULTS_STORE", store)
    return load_dag("multiplt_publish")


def states(run) -> dict:
    return {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}


def test_manual_run_publishes_dataset_and_results(airflow_db, test_hub, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("MULTIPLT_HUB_BACKOFF", "0.01")
    src = write_dataset(tmp_path / "ds")
    store = f"file://{tmp_path}/results.parquet"
    record_pass1(str(tmp_path / "results.parquet"), "file:///out", {1: 0.5})
    dag = load_publish_dag(store, monkeypatch)
    run = dag.test(run_conf={"dataset_repo": "org/data", "results_repo": "org/board", "dataset_uri": src})
    got = states(run)
    assert got[("publish_dataset", 0)] == "success" and got[("publish_results", 0)] == "success"
    assert got[("plan_checkpoints", -1)] == "skipped"
    assert ("dataset", "org/data") in test_hub.repos and ("dataset", "org/board") in test_hub.repos
    files = test_hub.repos[("dataset", "org/data")].resolve("main").files
    assert "data/lua-00000-of-00001.parquet" in files
    logs = capfd.readouterr()
    assert "checkpoints_repo is not set" in logs.out + logs.err
    assert test_hub.token not in logs.out + logs.err


def test_no_token_skips_every_publication(airflow_db, test_hub, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.delenv("AIRFLOW_CONN_HUGGINGFACE_DEFAULT", raising=False)
    src = write_dataset(tmp_path / "ds")
    dag = load_publish_dag(f"file://{tmp_path}/results.parquet", monkeypatch)
    run = dag.test(run_conf={"dataset_repo": "org/data", "dataset_uri": src})
    assert states(run)[("plan_dataset", -1)] == "skipped"
    assert not test_hub.repos


def test_dry_run_writes_the_dataset_without_a_token(airflow_db, test_hub, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.delenv("AIRFLOW_CONN_HUGGINGFACE_DEFAULT", raising=False)
    src = write_dataset(tmp_path / "ds")
    dag = load_publish_dag(f"file://{tmp_path}/results.parquet", monkeypatch)
    run = dag.test(run_conf={"dataset_repo": "org/data", "results_repo": "org/board",
                             "dataset_uri": src, "dry_run": str(tmp_path / "dry")})
    got = states(run)
    assert got[("publish_dataset", 0)] == "success"
    assert got[("plan_results", -1)] == "skipped" and got[("plan_checkpoints", -1)] == "skipped"
    assert (tmp_path / "dry" / "ds" / "data" / "lua-00000-of-00001.parquet").is_file()
    assert not test_hub.repos  # nothing sent
