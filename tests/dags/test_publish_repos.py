"""multiplt_publish refuses runs whose publications would delete each other's files: two dataset
folders to the one `dataset_repo` (each `publish dataset` deletes the `data/` files its folder
lacks), or one repo as both `dataset_repo` and `results_repo`; a checkpoints repo is a model
repo, another repo than a dataset repo of the same name."""

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

from multiplt_pipelines import checks  # noqa: E402
from multiplt_pipelines import publishing as pub  # noqa: E402
from tests.support.airflow import load_dag  # noqa: E402


def defaults(**given) -> dict:
    return {**{k: v["default"] for k, v in pub.PUBLISH.items() if "default" in v}, **given}


def event(name, extra=None, uri="file:///x"):
    return {"name": name, "uri": uri, "extra": extra or {}}


def dataset_events(*folders):
    return [event(f"multiplt_dataset_{lang}", {"dataset_uri": folder})
            for lang, folder in zip(("lua", "rkt", "r", "jl", "ml"), folders)]


def test_two_dataset_folders_to_one_dataset_repo_are_refused():
    settings = defaults(dataset_repo="org/data")
    with pytest.raises(checks.BadParams, match=re.escape(
            "Param dataset_repo: this run would publish 2 dataset folders (s3://b/ds, s3://b/other) "
            "to org/data, and each publication deletes the splits of the others")) as info:
        pub.dataset_commands(settings, dataset_events("s3://b/ds", "s3://b/other", "s3://b/ds"))
    assert info.value.keys == ("dataset_repo",)
    # the events of one folder (one per language) are one publication
    assert pub.dataset_commands(settings, dataset_events("s3://b/ds", "s3://b/ds")) == [
        ["publish", "dataset", "--from", "s3://b/ds", "--repo", "org/data"]]


def test_a_dry_run_refuses_only_folders_of_one_name():
    """A dry run writes each folder to <dry_run>/<folder's name>: two names, two folders."""
    settings = defaults(dataset_repo="org/data", dry_run="/srv/dry")
    commands = pub.dataset_commands(settings, dataset_events("s3://b/one/ds", "s3://b/two/other"))
    assert [c[-1] for c in commands] == ["/srv/dry/ds", "/srv/dry/other"]
    with pytest.raises(checks.BadParams, match=re.escape(
            "Param dry_run: the dataset folders s3://b/one/ds, s3://b/two/ds would be written to one "
            "dry-run folder (/srv/dry/ds)")):
        pub.dataset_commands(settings, dataset_events("s3://b/one/ds", "s3://b/two/ds"))


@pytest.mark.parametrize("results_repo", ["org/data", "Org/Data"])
def test_one_repo_for_the_dataset_and_the_results_is_refused(results_repo):
    with pytest.raises(checks.BadParams, match="Params dataset_repo and results_repo: both are org/data"):
        checks.publishing(defaults(dataset_repo="org/data", results_repo=results_repo))
    checks.publishing(defaults(dataset_repo="org/data", results_repo="org/board"))
    # a model repo and a dataset repo of one name are two repos: no conflict
    checks.publishing(defaults(dataset_repo="org/x", checkpoints_repo="org/x", results_repo="org/board"))


def plan(monkeypatch, kind: str, variable: dict, conf: dict, events=()):
    """The DAG's plan task of `kind` with the Variable `variable`, the run's `conf` and Asset
    `events` ([(name, dataset_uri)])."""
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_PUBLISH", json.dumps(variable))
    monkeypatch.setenv("HF_TOKEN", "hf_plan_test_token")
    accessor = {name: [SimpleNamespace(asset=SimpleNamespace(name=name, uri=f"s3://b/assets/{name}"),
                                       extra={"dataset_uri": folder}, timestamp=i)]
                for i, (name, folder) in enumerate(events)}
    task = load_dag("multiplt_publish").get_task(f"plan_{kind}").python_callable
    return task(params=defaults(**conf), dag_run=SimpleNamespace(conf=conf), triggering_asset_events=accessor)


def test_the_plan_fails_such_runs_in_one_line(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    two = [("multiplt_dataset_lua", "s3://b/translate/a"), ("multiplt_dataset_rkt", "s3://b/translate/b")]
    with pytest.raises(AirflowFailException, match=r"^Param dataset_repo: this run would publish 2 dataset "
                                                   r"folders .*\(from the Airflow Variable multiplt_publish\)$"):
        plan(monkeypatch, "dataset", {"dataset_repo": "org/data"}, {}, two)
    assert plan(monkeypatch, "dataset", {"dataset_repo": "org/data"}, {}, two[:1]) == [
        ["publish", "dataset", "--from", "s3://b/translate/a", "--repo", "org/data"]]
    same = {"dataset_repo": "org/data", "results_repo": "org/data"}
    for kind in ("dataset", "results"):
        with pytest.raises(AirflowFailException, match=r"^Params dataset_repo and results_repo: both are "
                                                       r"org/data, .* \(from the Airflow Variable "
                                                       r"multiplt_publish\)$"):
            plan(monkeypatch, kind, same, {}, two[:1])
