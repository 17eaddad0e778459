"""multiplt_publish and multiplt_watch plans: which `multiplt publish` commands an Asset event
or a manual run gives, when a publication is skipped and why, settings precedence, and the
finetune/evaluate runs of announced models; the credentials' Hub token from the connection."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
for _path in (str(REPO / "dags"), str(REPO / "plugins")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from multiplt_pipelines import publishing as pub  # noqa: E402
from multiplt_pipelines import watching  # noqa: E402
from tests.support.airflow import load_dag  # noqa: E402

STORE = "file:///DATA/results/results.parquet"


def defaults(schema: dict, **given) -> dict:
    return {**{k: v["default"] for k, v in schema.items() if "default" in v}, **given}


def event(name, extra=None, uri="file:///x"):
    return {"name": name, "uri": uri, "extra": extra or {}}


def test_settings_precedence_params_variable_conf():
    params = defaults(pub.PUBLISH, dataset_repo="conf/ds")
    got = pub.effective(params, {"dataset_repo": "conf/ds"}, {"dataset_repo": "var/ds",
                                                              "results_repo": "var/res", "junk": 1})
    assert got["dataset_repo"] == "conf/ds" and got["results_repo"] == "var/res" and "junk" not in got


def test_nothing_is_published_without_a_repo():
    settings = defaults(pub.PUBLISH)
    for fn in (pub.dataset_commands, lambda s, e: pub.checkpoint_commands(s, e, STORE),
               lambda s, e: pub.results_commands(s, e, STORE)):
        with pytest.raises(pub.NotPublishing, match="is not set"):
            fn(settings, [event("multiplt_results")])


def test_dataset_events_give_one_command_per_folder():
    settings = defaults(pub.PUBLISH, dataset_repo="org/data", private=True)
    events = [event("multiplt_dataset_lua", {"dataset_uri": "s3://b/ds"}),
              event("multiplt_dataset_rkt", {"dataset_uri": "s3://b/ds"})]
    assert pub.dataset_commands(settings, events) == [
        ["publish", "dataset", "--from", "s3://b/ds", "--repo", "org/data", "--private"]]
    # a folder named by the Asset's URI alone is a folder too (tests/dags/test_publish_repos.py:
    # two folders to one dataset_repo are refused)
    assert pub.dataset_commands(settings, [event("multiplt_dataset_r", {}, uri="s3://b/other")]) == [
        ["publish", "dataset", "--from", "s3://b/other", "--repo", "org/data", "--private"]]
    with pytest.raises(pub.NotPublishing, match="no dataset"):
        pub.dataset_commands(settings, [event("multiplt_results")])


def test_checkpoint_event_outputs_grouped_per_repo():
    settings = defaults(pub.PUBLISH, checkpoints_repo="org/MultiPL-T-{base}")
    extra = {"outputs": [{"lang": "lua", "out": "s3://b/t/lua"}, {"lang": "rkt", "out": "s3://b/t/rkt"}],
             "base_model": "bigcode/starcoderbase-1b", "experiment": "multiplt"}
    assert pub.checkpoint_commands(settings, [event("multiplt_checkpoints", extra)], STORE) == [
        ["publish", "checkpoints", "--from", "s3://b/t/lua", "--from", "s3://b/t/rkt",
         "--repo", "org/MultiPL-T-bigcode__starcoderbase-1b", "--tags", "all", "--results-store", STORE]]
    with pytest.raises(ValueError, match="base model"):
        pub.checkpoint_commands({**settings, "training_outputs": ["s3://b/t/lua"]}, [], STORE)
    manual = {**settings, "checkpoints_repo": "org/m", "training_outputs": ["s3://b/t/lua"], "tags": "best"}
    assert pub.checkpoint_commands(manual, [], STORE)[0][2:] == [
        "--from", "s3://b/t/lua", "--repo", "org/m", "--tags", "best", "--results-store", STORE]
    # a deployment that has evaluated nothing yet: no results store, no --results-store
    assert pub.checkpoint_commands(manual, [], None)[0][2:] == [
        "--from", "s3://b/t/lua", "--repo", "org/m", "--tags", "best"]


def test_base_keeps_its_owner_so_two_bases_of_one_name_get_two_repos():
    """`a/x` and `b/x` fine-tuned under one experiment have the same tags: one repo for both
    would refuse the second (or --force would move the first's tags)."""
    settings = defaults(pub.PUBLISH, checkpoints_repo="org/MultiPL-T-{base}")
    events = [event("multiplt_checkpoints", {"outputs": [{"lang": "lua", "out": f"s3://b/{o}"}],
                                             "base_model": f"{o}/x", "experiment": "multiplt"})
              for o in ("a", "b")]
    repos = [c[c.index("--repo") + 1] for c in pub.checkpoint_commands(settings, events, STORE)]
    assert repos == ["org/MultiPL-T-a__x", "org/MultiPL-T-b__x"]
    # a base that is a path or URI: its last two parts; never `--` or `..`, which the Hub refuses
    assert pub.base_repo_name("s3://bucket/training/lua-out/") == "training__lua-out"
    assert pub.base_repo_name("/models/my model") == "models__my_model"
    assert pub.base_repo_name("org/x--y..z") == "org__x-y.z"


def test_existing_store_is_none_until_the_store_is_written(tmp_path):
    store = str(tmp_path / "results.parquet")
    assert pub.existing_store(store) is None
    (tmp_path / "results.parquet").write_bytes(b"x")
    assert pub.existing_store(store) == store


def test_results_only_on_a_results_event_or_by_hand():
    settings = defaults(pub.PUBLISH, results_repo="org/board")
    want = [["publish", "results", "--store", STORE, "--repo", "org/board"]]
    assert pub.results_commands(settings, [event("multiplt_results")], STORE) == want
    assert pub.results_commands(settings, [], STORE) == want  # a manual run
    with pytest.raises(pub.NotPublishing, match="did not change"):
        pub.results_commands(settings, [event("multiplt_checkpoints")], STORE)


def test_asset_events_from_the_task_context():
    from types import SimpleNamespace as NS

    def ev(name, extra, ts):
        return NS(asset=NS(name=name, uri=f"x://{name}"), extra=extra, timestamp=ts)

    a = ev("multiplt_checkpoints", {"outputs": []}, 1)
    accessor = {"k1": [a, ev("multiplt_results", {}, 2)], "alias": [a]}  # an event seen twice
    assert pub.asset_events(accessor) == [
        {"name": "multiplt_checkpoints", "uri": "x://multiplt_checkpoints", "extra": {"outputs": []}},
        {"name": "multiplt_results", "uri": "x://multiplt_results", "extra": {}}]
    assert pub.asset_events(None) == []


def test_watch_list_keys_are_not_run_settings():
    """The `multiplt_watch` Variable is both the watch list and the runs' settings: the list's
    `limit` (models per listing) must not cut every evaluation to its first N problems."""
    params = defaults(watching.WATCH)
    variable = {"authors": ["bigcode"], "limit": 20, "pattern": "star*", "n": 5,
                "evaluate_languages": ["lua"]}
    settings = watching.watch_settings(params, {}, variable)
    assert settings["limit"] is None and settings["n"] == 5 and settings["evaluate_languages"] == ["lua"]
    conf = watching.watch_triggers(settings, ["ns/m"], "r")["evaluate"][0]["conf"]
    assert conf["limit"] is None
    # a manual run's conf (which Airflow has already applied to the Params) still sets it
    assert watching.watch_settings({**params, "limit": 3}, {"limit": 3}, variable)["limit"] == 3


def test_watch_runs_per_announced_model():
    settings = defaults(watching.WATCH, finetune_languages=["lua"], evaluate_languages=["lua", "r"],
                        backend="replay", n=2)
    events = [event("multiplt_new_base_model", {"from_trigger": True, "payload": {"model_id": "ns/a"}}),
              event("multiplt_new_base_model", {"from_trigger": True, "payload": {"model_id": "ns/b"}})]
    models = watching.watch_models(settings, events)
    assert models == ["ns/a", "ns/b"]
    runs = watching.watch_triggers(settings, models, "asset_triggered__1")
    assert [r["conf"]["model"] for r in runs["evaluate"]] == models
    ev = runs["evaluate"][0]["conf"]
    assert (ev["languages"], ev["epoch"], ev["backend"], ev["n"]) == (["lua", "r"], 0, "replay", 2)
    ft = runs["finetune"][1]["conf"]
    assert (ft["base_model"], ft["languages"], ft["evaluate_base"]) == ("ns/b", ["lua"], False)
    assert len({r["trigger_run_id"] for r in runs["evaluate"] + runs["finetune"]}) == 4
    none = watching.watch_triggers({**settings, "finetune_languages": []}, models, "r")
    assert none["finetune"] == [] and len(none["evaluate"]) == 2
    assert watching.watch_models({**settings, "model": "ns/manual"}, events) == ["ns/manual"]


def test_models_that_differ_only_in_unsafe_characters_get_their_own_runs():
    """`ns/m-2` and `ns/m_2` gave one trigger run id (the path made safe): the second model's
    evaluation found the first's run and was skipped. Ids that are safe already stay as they are."""
    from multiplt_pipelines.plans import run_id_for, trigger_run_id

    settings = defaults(watching.WATCH, finetune_languages=["lua"], evaluate_languages=["lua"])
    runs = watching.watch_triggers(settings, ["ns/m-2", "ns/m_2"], "asset_triggered__1")
    assert len({r["trigger_run_id"] for r in runs["evaluate"] + runs["finetune"]}) == 4
    base = {"epoch": 0, "revision": None}
    assert trigger_run_id("m1", {**base, "model": "ns/m-2"}) != trigger_run_id("m1", {**base, "model": "ns/m_2"})
    assert run_id_for("manual__1__lua_x_epoch1") == "manual__1__lua_x_epoch1"
    long = ["r" + "x" * 300 + c for c in "ab"]
    assert run_id_for(long[0]) != run_id_for(long[1]) and all(len(run_id_for(t)) <= 240 for t in long)


def test_params_validate():
    from airflow.sdk import Param
    from airflow.sdk.exceptions import ParamValidationError

    for schema in (watching.WATCH, pub.PUBLISH):
        for name, spec in schema.items():
            Param(**spec).resolve(spec["default"])  # every default is valid
    with pytest.raises(ParamValidationError):
        Param(**watching.WATCH["finetune_languages"]).resolve(["cobol"])
    with pytest.raises(ParamValidationError):
        Param(**pub.PUBLISH["private"]).resolve("yes")


def test_hub_token_from_the_connection_when_the_environment_has_none(monkeypatch):
    from multiplt_airflow import credentials

    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert "HF_TOKEN" not in credentials.from_environment()
    monkeypatch.setenv("AIRFLOW_CONN_HUGGINGFACE_DEFAULT", '{"conn_type": "generic", "password": "hf_from_conn"}')
    assert credentials.from_environment()["HF_TOKEN"] == "hf_from_conn"
    monkeypatch.setenv("HF_TOKEN", "hf_from_env")
    assert credentials.from_environment()["HF_TOKEN"] == "hf_from_env"


def test_rerun_targets_of_scheduled_and_manual_runs():
    from multiplt_pipelines.params import EVALUATE

    settings = defaults(watching.evaluate_params(EVALUATE, "@weekly"),
                        rerun_models=["bigcode/starcoderbase-1b", {"model": "org/m", "revision": "v2"}])
    assert watching.evaluation_targets(settings, scheduled=True) == [
        {"model": "bigcode/starcoderbase-1b", "revision": None, "tokenizer": None},
        {"model": "org/m", "revision": "v2", "tokenizer": None}]
    assert watching.evaluation_targets({**settings, "model": "x"}, scheduled=False) == [{}]
    with pytest.raises(watching.NothingToEvaluate, match="nothing to evaluate"):
        watching.evaluation_targets({**settings, "rerun_models": []}, scheduled=True)


@pytest.mark.parametrize("schedule, timetable, model_type", [
    ("", "NullTimetable", "string"), ("0 3 * * 1", "CronTriggerTimetable", ["null", "string"])])
def test_evaluate_cron_is_off_by_default_and_set_by_the_config(monkeypatch, schedule, timetable,
                                                               model_type):
    monkeypatch.setenv("AIRFLOW__MULTIPLT__EVALUATE_SCHEDULE", schedule)
    dag = load_dag("multiplt_evaluate")
    dag.validate()  # Airflow refuses a schedule while a Param has no valid default
    assert type(dag.timetable).__name__ == timetable
    model = dag.params.get_param("model")
    assert model.schema["type"] == model_type  # a scheduled DAG needs a default for every Param
    assert dag.params["rerun_models"] == []


def test_dry_run_writes_datasets_to_a_folder_and_skips_what_has_no_dry_run():
    settings = defaults(pub.PUBLISH, dataset_repo="org/data", checkpoints_repo="org/m",
                        results_repo="org/board", dry_run="/tmp/pub/")
    events = [event("multiplt_dataset_lua", {"dataset_uri": "file:///d/main_job/translate"}),
              event("multiplt_dataset_r", {"dataset_uri": "s3://b/other"})]
    assert pub.dataset_commands(settings, events) == [
        ["publish", "dataset", "--from", "file:///d/main_job/translate", "--repo", "org/data",
         "--dry-run", "/tmp/pub/translate"],
        ["publish", "dataset", "--from", "s3://b/other", "--repo", "org/data",
         "--dry-run", "/tmp/pub/other"]]
    extra = {"outputs": [{"lang": "lua", "out": "s3://b/t/lua"}], "base_model": "m"}
    with pytest.raises(pub.NotPublishing, match="dry run.*no dry-run form"):
        pub.checkpoint_commands(settings, [event("multiplt_checkpoints", extra)], STORE)
    with pytest.raises(pub.NotPublishing, match="dry run.*no dry-run form"):
        pub.results_commands(settings, [event("multiplt_results")], STORE)


def publish_plan(monkeypatch, kind: str, variable: dict, conf: dict):
    """The DAG's plan task of `kind` for a manual run with `conf` and the Variable `variable`."""
    import json
    from types import SimpleNamespace

    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_PUBLISH", json.dumps(variable))
    plan = load_dag("multiplt_publish").get_task(f"plan_{kind}").python_callable
    return plan(params=defaults(pub.PUBLISH, **conf), dag_run=SimpleNamespace(conf=conf),
                triggering_asset_events={})


def test_plan_checks_the_variables_values_against_the_params(monkeypatch, tmp_path):
    """Airflow checks a triggered run's conf against the Params, never the Variable: the string
    "false" for `private` was truthy, so a new repo was created private."""
    import re

    from airflow.sdk.exceptions import AirflowFailException

    conf = {"dataset_uri": "/d/out", "dry_run": str(tmp_path)}
    with pytest.raises(AirflowFailException, match=re.escape(
            "Param private: 'false' is not of type 'boolean' (create new repos private) "
            "(from the Airflow Variable multiplt_publish)")):
        publish_plan(monkeypatch, "dataset", {"dataset_repo": "me/x", "private": "false"}, conf)
    with pytest.raises(AirflowFailException, match=r"^Param tags: '' .*\(from the Airflow Variable "
                                                   r"multiplt_publish\)$"):
        publish_plan(monkeypatch, "checkpoints", {"checkpoints_repo": "me/m", "tags": ""},
                     {"training_outputs": ["/t/lua"]})
    [command] = publish_plan(monkeypatch, "dataset", {"dataset_repo": "me/x", "private": False}, conf)
    assert command[:6] == ["publish", "dataset", "--from", "/d/out", "--repo", "me/x"]
    assert "--private" not in command
