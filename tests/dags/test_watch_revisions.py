"""multiplt_watch runs each announced model at the commit it was announced at.

A repo deleted and created again is announced again, but its evaluation had revision null: the
run folder `...-main-...` of the first repo, which generate found complete and resumed without
loading the new weights. The announcement now carries the commit (`revision` in the event), and
`plan` passes it on as the evaluation's `revision` and the fine-tune's `base_revision`."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

from tests.dags.test_pipeline_plans import defaults, load_dag
from multiplt_pipelines import params as schemas  # noqa: E402 (dags/ is on sys.path)
from multiplt_pipelines import watching  # noqa: E402
from multiplt_pipelines.plans import evaluation_plan, training_plan  # noqa: E402

FIRST, SECOND = "a" * 40, "b" * 40


def new_model_events(*payloads) -> dict:
    """triggering_asset_events as Airflow gives them: the watcher's events, oldest first."""
    asset = SimpleNamespace(name="multiplt_new_base_model", uri="multiplt://new_base_model")
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    return {"multiplt_new_base_model": [
        SimpleNamespace(asset=asset, timestamp=start + datetime.timedelta(minutes=i),
                        extra={"from_trigger": True, "payload": payload})
        for i, payload in enumerate(payloads)]}


def plan(events: dict, monkeypatch, conf: dict | None = None, variable: str | None = None) -> dict:
    if variable is None:
        monkeypatch.delenv("AIRFLOW_VAR_MULTIPLT_WATCH", raising=False)
    else:
        monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_WATCH", variable)
    run = load_dag("multiplt_watch").get_task("plan").python_callable
    conf = conf or {}
    return run(params={**defaults(watching.WATCH), **conf},
               dag_run=SimpleNamespace(run_type="asset_triggered", conf=conf),
               run_id="asset_triggered__1", triggering_asset_events=events)


def folders(conf: dict) -> list[str]:
    params = {**defaults(watching.evaluate_params(schemas.EVALUATE, None)), **conf}
    return [entry["run"] for entry in evaluation_plan(params, "file:///DATA", "file:///DATA/r.parquet")]


def test_the_announced_commit_is_the_runs_revision(monkeypatch):
    runs = plan(new_model_events({"model_id": "ns/m", "revision": FIRST}), monkeypatch,
                variable='{"finetune_languages": ["lua"], "evaluate_languages": ["lua"]}')
    (evaluate,) = runs["evaluate"]
    assert evaluate["conf"]["revision"] == FIRST
    (finetune,) = runs["finetune"]
    assert finetune["conf"]["base_revision"] == FIRST
    params = {**defaults(schemas.FINETUNE), **finetune["conf"]}
    assert training_plan(params, "file:///DATA")[0]["train"][-2:] == ["--base-revision", FIRST]


def test_a_recreated_repo_gets_a_run_folder_of_its_own(monkeypatch):
    first = plan(new_model_events({"model_id": "ns/m", "revision": FIRST}), monkeypatch)
    second = plan(new_model_events({"model_id": "ns/m", "revision": SECOND}), monkeypatch)
    one, two = (folders(r["evaluate"][0]["conf"]) for r in (first, second))
    assert one != two and not set(one) & set(two)
    assert all(FIRST in f for f in one) and all(SECOND in f for f in two)
    # announced twice in one batch (created again between two polls): the latest commit
    both = plan(new_model_events({"model_id": "ns/m", "revision": FIRST},
                                 {"model_id": "ns/m", "revision": SECOND}), monkeypatch)
    assert [r["conf"]["revision"] for r in both["evaluate"]] == [SECOND]


def test_without_a_commit_the_default_branch_as_before(monkeypatch):
    """An event of an earlier watcher (no revision), and a manual run's `model`."""
    runs = plan(new_model_events({"model_id": "ns/m"}), monkeypatch)
    assert runs["evaluate"][0]["conf"]["revision"] is None
    manual = plan(new_model_events({"model_id": "ns/m", "revision": FIRST}), monkeypatch,
                  conf={"model": "ns/manual"})
    assert [(r["conf"]["model"], r["conf"]["revision"]) for r in manual["evaluate"]] == [("ns/manual", None)]
