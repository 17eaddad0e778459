"""multiplt_publish's `force` Param: a manual run's conf can replace the dataset of another source
folder that `dataset_repo` holds (`multiplt publish dataset --force`, which refuses it otherwise,
exit 2), with no other recourse in the UI before; checkpoints and results never get `--force`,
an Asset-triggered run never forces, and the Airflow Variable (every Asset-triggered run's
settings) cannot set it."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
for _path in (str(REPO / "dags"), str(REPO / "plugins")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from multiplt_pipelines import publishing as pub  # noqa: E402
from tests.support.airflow import load_dag  # noqa: E402

STORE = "file:///DATA/results/results.parquet"


def defaults(**given) -> dict:
    return {**{k: v["default"] for k, v in pub.PUBLISH.items() if "default" in v}, **given}


def plan(monkeypatch, kind: str, variable: dict, conf: dict, events=()):
    """The DAG's plan task of `kind` with the Variable `variable`, the run's `conf` (applied to
    the Params, as Airflow does) and Asset `events` ([(name, dataset_uri)])."""
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_PUBLISH", json.dumps(variable))
    monkeypatch.setenv("HF_TOKEN", "hf_plan_test_token")
    accessor = {name: [SimpleNamespace(asset=SimpleNamespace(name=name, uri=f"s3://b/assets/{name}"),
                                       extra={"dataset_uri": folder}, timestamp=i)]
                for i, (name, folder) in enumerate(events)}
    task = load_dag("multiplt_publish").get_task(f"plan_{kind}").python_callable
    return task(params=defaults(**conf), dag_run=SimpleNamespace(conf=conf), triggering_asset_events=accessor)


def test_force_is_a_boolean_param_off_by_default():
    from airflow.sdk import Param
    from airflow.sdk.exceptions import ParamValidationError

    spec = pub.PUBLISH["force"]
    assert Param(**spec).resolve(spec["default"]) is False
    assert Param(**spec).resolve(True) is True
    with pytest.raises(ParamValidationError):
        Param(**spec).resolve("yes")
    assert "manual run" in spec["description"] and "never forces" in spec["description"]
    assert "force" in load_dag("multiplt_publish").params


def test_a_manual_runs_force_reaches_the_dataset_command_only(monkeypatch):
    conf = {"dataset_repo": "org/data", "dataset_uri": "s3://b/translate/b", "force": True,
            "checkpoints_repo": "org/m", "training_outputs": ["s3://b/training/x-multiplt-lua"],
            "results_repo": "org/board"}
    assert plan(monkeypatch, "dataset", {}, conf) == [
        ["publish", "dataset", "--from", "s3://b/translate/b", "--repo", "org/data", "--force"]]
    [checkpoints] = plan(monkeypatch, "checkpoints", {}, conf)
    [results] = plan(monkeypatch, "results", {}, conf)
    assert checkpoints[:2] == ["publish", "checkpoints"] and "--force" not in checkpoints
    assert results[:2] == ["publish", "results"] and "--force" not in results
    # without it (the default), as before: the command refuses another folder's dataset
    assert plan(monkeypatch, "dataset", {}, {**conf, "force": False}) == [
        ["publish", "dataset", "--from", "s3://b/translate/b", "--repo", "org/data"]]


def test_force_with_a_dry_run_and_private():
    settings = defaults(dataset_repo="org/data", dataset_uri="/d/translate", dry_run="/srv/dry",
                        private=True, force=True)
    assert pub.dataset_commands(settings, []) == [
        ["publish", "dataset", "--from", "/d/translate", "--repo", "org/data", "--private", "--force",
         "--dry-run", "/srv/dry/translate"]]


def test_an_asset_triggered_run_never_forces(monkeypatch):
    events = [{"name": "multiplt_dataset_lua", "uri": "s3://b/assets/lua",
               "extra": {"dataset_uri": "s3://b/translate/a"}}]
    # even with `force` in its settings: the events make it an Asset-triggered run
    assert pub.dataset_commands(defaults(dataset_repo="org/data", force=True), events) == [
        ["publish", "dataset", "--from", "s3://b/translate/a", "--repo", "org/data"]]
    # a Variable that says false is its default: accepted
    assert plan(monkeypatch, "dataset", {"dataset_repo": "org/data", "force": False}, {},
                [("multiplt_dataset_lua", "s3://b/translate/a")]) == [
        ["publish", "dataset", "--from", "s3://b/translate/a", "--repo", "org/data"]]


@pytest.mark.parametrize("kind", ["dataset", "checkpoints", "results"])
def test_the_variable_cannot_force(monkeypatch, kind):
    """The Variable's settings are every Asset-triggered run's: `force` there is refused, in one
    line naming the Variable, before anything is published (no retry)."""
    from airflow.sdk.exceptions import AirflowFailException

    variable = {"dataset_repo": "org/data", "checkpoints_repo": "org/m", "results_repo": "org/board",
                "force": True}
    events = [("multiplt_dataset_lua", "s3://b/translate/a")]
    with pytest.raises(AirflowFailException, match=re.escape(
            "Param force: true replaces another source folder's dataset, which only a manual run's "
            "conf may ask for (an Asset-triggered run never forces): remove it (from the Airflow "
            "Variable multiplt_publish)")):
        plan(monkeypatch, kind, variable, {}, events)
    # a value that is no boolean: the Param's schema refuses it, as Airflow would a conf's
    with pytest.raises(AirflowFailException, match=re.escape(
            "Param force: 'true' is not of type 'boolean' (")):
        plan(monkeypatch, kind, {**variable, "force": "true"}, {}, events)


def test_a_manual_runs_conf_overrides_a_variable_without_force(monkeypatch):
    """force from the conf, the repo from the Variable: the conf's value is no Variable's."""
    assert plan(monkeypatch, "dataset", {"dataset_repo": "org/data"},
                {"dataset_uri": "/d/translate", "force": True}) == [
        ["publish", "dataset", "--from", "/d/translate", "--repo", "org/data", "--force"]]
