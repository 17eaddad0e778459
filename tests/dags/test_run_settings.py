"""One rule for a run's settings (chain.run_settings): the Params, the Airflow Variable named after
the DAG for the keys the conf did not set, and which keys the Variable set. multiplt_evaluate
uses it too, reading the Variable for reruns only (scheduled, or by hand without `model`); and one rule (chain.from_the_event)
for an input the triggering event replaced: the event's value, not the Variable's."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import pytest

from tests.dags.test_pipeline_plans import defaults, load_dag
from multiplt_pipelines import chain  # noqa: E402 (dags/ is on sys.path)
from multiplt_pipelines import checks  # noqa: E402
from multiplt_pipelines import params as schemas  # noqa: E402
from multiplt_pipelines import watching  # noqa: E402

PARAMS = watching.evaluate_params(schemas.EVALUATE, "@weekly")


def settings(monkeypatch, variable, conf: dict, **kwargs):
    """run_settings of multiplt_evaluate as a task calls it: the conf merged into the Params."""
    if variable is None:
        monkeypatch.delenv("AIRFLOW_VAR_MULTIPLT_EVALUATE", raising=False)
    else:
        monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_EVALUATE", json.dumps(variable))
    params = {**defaults(PARAMS, languages=["lua"]), **conf}
    return chain.run_settings("multiplt_evaluate", params, SimpleNamespace(conf=conf), PARAMS, **kwargs)


def test_the_variable_sets_what_the_conf_does_not_and_says_which(monkeypatch):
    got, from_variable = settings(monkeypatch, {"limit": 3, "shards": 2}, {"shards": 5})
    assert (got["limit"], got["shards"], from_variable) == (3, 5, {"limit"})
    got, from_variable = settings(monkeypatch, None, {})
    assert (got["limit"], from_variable) == (PARAMS["limit"]["default"], set())


def test_without_reading_the_variable_the_params_stand_and_the_conf_is_still_checked(monkeypatch):
    """multiplt_evaluate's manual runs: the Variable is neither applied nor checked."""
    got, from_variable = settings(monkeypatch, {"limit": 3, "shard": 2}, {"shards": 5}, read_variable=False)
    assert (got["limit"], got["shards"], from_variable) == (PARAMS["limit"]["default"], 5, set())
    with pytest.raises(checks.BadParams, match=re.escape(
            "conf key 'limt' is not a Param of multiplt_evaluate (did you mean 'limit'?)")):
        settings(monkeypatch, None, {"limt": 2}, read_variable=False)
    with pytest.raises(checks.BadParams, match=re.escape(
            "Variable multiplt_evaluate key 'shard' is not a Param of multiplt_evaluate")):
        settings(monkeypatch, {"shard": 2}, {})


def evaluate_plan(monkeypatch, variable, conf: dict, run_type: str):
    monkeypatch.setenv("AIRFLOW__MULTIPLT__EVALUATE_SCHEDULE", "@weekly")
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_EVALUATE", json.dumps(variable))
    plan = load_dag("multiplt_evaluate").get_task("plan").python_callable
    return plan("file:///DATA", "file:///DATA/results.parquet",
                params={**defaults(PARAMS, languages=["lua"]), **conf},
                dag_run=SimpleNamespace(run_type=run_type, conf=conf))


def test_evaluate_reads_the_variable_for_scheduled_runs_only(monkeypatch):
    variable = {"rerun_models": ["s3://models/m"], "limit": 3}
    [scheduled] = evaluate_plan(monkeypatch, variable, {}, "scheduled")
    assert scheduled["model"] == "s3://models/m" and scheduled["build"][-2:] == ["--limit", "3"]
    [manual] = evaluate_plan(monkeypatch, variable, {"model": "s3://models/n"}, "manual")
    assert manual["model"] == "s3://models/n" and "--limit" not in manual["build"]
    # a manual run does not read the Variable, so a key of it that is no Param is not refused
    [manual] = evaluate_plan(monkeypatch, {"shard": 2}, {"model": "s3://models/n"}, "manual")
    assert manual["model"] == "s3://models/n"
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="Variable multiplt_evaluate key 'shard'"):
        evaluate_plan(monkeypatch, {"shard": 2, "rerun_models": ["s3://models/m"]}, {}, "scheduled")
    # a value the Variable set is named as the Variable's when refused
    with pytest.raises(AirflowFailException, match=re.escape(
            "the replay backend needs --replay-source (a completion folder or JSONL) (backend from the Airflow "
            "Variable multiplt_evaluate)")):
        evaluate_plan(monkeypatch, {"rerun_models": ["s3://models/m"], "backend": "replay"}, {}, "scheduled")


def test_a_manual_run_without_model_reads_the_variable_as_a_scheduled_run_does(monkeypatch):
    """A manual run whose conf names no `model` evaluates `rerun_models`: the Variable's, as a
    scheduled run, with the Variable's other keys (the conf's win); one naming `model` does not
    read it."""
    from airflow.sdk.exceptions import AirflowFailException

    variable = {"rerun_models": ["s3://models/m", "s3://models/k"], "limit": 3, "n": 2}
    runs = evaluate_plan(monkeypatch, variable, {"n": 4}, "manual")
    assert [run["model"] for run in runs] == ["s3://models/m", "s3://models/k"]
    assert all(run["build"][-2:] == ["--limit", "3"] for run in runs)
    assert all(run["generate"][run["generate"].index("--n") + 1] == "4" for run in runs)
    # a conf with `model: null` (the trigger form's empty field) names no model either
    assert [run["model"] for run in evaluate_plan(monkeypatch, variable, {"model": None}, "manual")
            ] == ["s3://models/m", "s3://models/k"]
    [manual] = evaluate_plan(monkeypatch, variable, {"model": "s3://models/n"}, "manual")
    assert manual["model"] == "s3://models/n" and "--limit" not in manual["build"]
    # the Variable it reads is checked as a scheduled run's, and named when refused
    with pytest.raises(AirflowFailException, match="Variable multiplt_evaluate key 'shard'"):
        evaluate_plan(monkeypatch, {"shard": 2, "rerun_models": ["s3://models/m"]}, {}, "manual")
    with pytest.raises(AirflowFailException, match=re.escape(
            "(backend from the Airflow Variable multiplt_evaluate)")):
        evaluate_plan(monkeypatch, {"rerun_models": ["s3://models/m"], "backend": "replay"}, {},
                      "manual")


def test_a_value_the_event_replaced_is_not_the_variables():
    given, from_variable = {"tests": "/v/t", "n": 1}, {"tests", "n"}
    assert chain.from_the_event(from_variable, given, {**given, "tests": "/e/t"}, "tests") == {"n"}
    kept = chain.from_the_event(from_variable, given, dict(given), "tests")
    assert kept == {"tests", "n"} and kept is not from_variable
    assert from_variable == {"tests", "n"}  # not changed in place
