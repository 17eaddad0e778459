"""A mapped docker sandbox stage (``stage_task_mapped(..., sandbox=True)`` on the docker runtime:
evaluate's execute and execute_late, testgen's and translate's validate) is a mapped task group:
per map index, stage_in[i] >> run[i] >> stage_out[i]. One shard whose step fails stops that
shard only; the others run and stage out their results. With three separately mapped operators
every run[i] waited for every stage_in and every stage_out[i] for every run, so one bad shard
made every shard upstream_failed."""

from __future__ import annotations

import json

import pytest

from multiplt_airflow.stage import stage_task_mapped
from tests.dags import test_stage_runtime
from tests.dags.test_stage_runtime import _dag
from tests.support.airflow import load_dag
from tests.support.evaluated_airflow import evaluate_conf

docker_runtime = test_stage_runtime.docker_runtime  # the fixture: [multiplt] runtime = docker

SHARDS = [["execute", "--in", "s3://bucket/runs/x", "--shard", f"{k}/2"] for k in range(2)]
STEPS = ("stage_in", "run", "stage_out")
DAG_FILE = f'''
import datetime

from airflow.sdk import DAG
from multiplt_airflow.stage import stage_task_mapped

with DAG(dag_id="docker_mapped_stage", schedule=None, start_date=datetime.datetime(2024, 1, 1),
         default_args={{"retries": 0}}) as dag:
    stage_task_mapped("execute", {SHARDS!r}, sandbox=True)
'''


class _Containers:
    """Stands in for docker.APIClient: a container exits 2 (bad input: failed, not retried) when
    `fail` holds for its entrypoint and command line; the others succeed."""

    def __init__(self, fail):
        self.fail, self.ran, self._argv = fail, [], {}

    def images(self, name):
        return [{"Id": name}]

    def create_host_config(self, **kwargs):
        return kwargs

    def create_container(self, **kwargs):
        container = f"c{len(self._argv)}"
        self._argv[container] = [*kwargs["entrypoint"], *kwargs["command"]]
        return {"Id": container}

    def attach(self, **kwargs):
        return iter([b"ok\n"])

    def start(self, container):
        self.ran.append(self._argv[container])

    def wait(self, container):
        return {"StatusCode": 2 if self.fail(self._argv[container]) else 0}

    def remove_container(self, container, **kwargs):
        pass

    def remove_volume(self, name):
        pass


def _states(run) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}


def test_the_steps_of_a_mapped_sandbox_stage_depend_on_their_own_shard_only(docker_runtime):
    from airflow.sdk.definitions.taskgroup import MappedTaskGroup

    with _dag("stage_docker_mapped_group") as dag:
        group = stage_task_mapped("execute", SHARDS, sandbox=True)
    assert isinstance(group, MappedTaskGroup)
    assert [t.task_id for t in group.iter_tasks()] == [f"execute.{s}" for s in STEPS]
    stage_in, run, stage_out = (dag.get_task(f"execute.{s}") for s in STEPS)
    assert stage_in.downstream_task_ids == {"execute.run"}
    assert run.downstream_task_ids == {"execute.stage_out"}
    assert run.network_mode == "none" and run.credentials is False
    assert stage_out.remove_volume and not stage_in.remove_volume


@pytest.mark.parametrize("step", ["in", "run"])
def test_one_failed_shard_leaves_the_other_shards_running(docker_runtime, airflow_db, monkeypatch,
                                                          tmp_path, step):
    from multiplt_airflow.docker_stage import MultipltDockerOperator

    containers = _Containers(fail=lambda argv: argv[1:3] == ["stage", step] and "0/2" in argv)
    monkeypatch.setattr(MultipltDockerOperator, "cli", property(lambda self: containers))
    # dag.test() runs a DAG of a configured bundle: this one, in a folder of its own
    (tmp_path / "docker_mapped_stage.py").write_text(DAG_FILE)
    bundle = {"name": "docker_mapped", "kwargs": {"path": str(tmp_path)},
              "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle"}
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([bundle]))

    states = _states(load_dag("docker_mapped_stage", tmp_path).test())

    failed = {"in": "stage_in", "run": "run"}[step]
    after = STEPS[STEPS.index(failed) + 1:]
    assert states[(f"execute.{failed}", 0)] == "failed"
    assert [states[(f"execute.{s}", 0)] for s in after] == ["upstream_failed"] * len(after)
    # shard 1 went through all three steps, in its own volume, and staged its results out
    assert [states[(f"execute.{s}", 1)] for s in STEPS] == ["success"] * 3, states
    assert [c[:3] for c in containers.ran if "1/2" in c] == [
        ["multiplt", "stage", "in"], ["multiplt", "stage", "run"], ["multiplt", "stage", "out"]]


def test_a_failed_execute_shard_leaves_the_other_languages_scored(docker_runtime, airflow_db,
                                                                  monkeypatch, capfd):
    """multiplt_evaluate on the docker runtime, lua and r with two shards each: lua's first
    shard fails in the sandbox; r's shards and lua's other one still run and stage out, r is
    scored and recorded, and lua's scoring.executed names the shard."""
    from multiplt_airflow.docker_stage import MultipltDockerOperator

    containers = _Containers(fail=lambda argv: argv[1:3] == ["stage", "run"] and "0/2" in argv
                             and any("-lua-" in a for a in argv))
    monkeypatch.setattr(MultipltDockerOperator, "cli", property(lambda self: containers))
    conf = evaluate_conf("s3://bucket/replay/{lang}", ["HumanEval_0_has_close_elements"],
                         ("lua", "r"), shards=2)

    run = load_dag("multiplt_evaluate").test(run_conf=conf)

    states = _states(run)
    # execute's instances: lua 0/2, lua 1/2, r 0/2, r 1/2
    assert [states.get(("execute.run", i)) for i in range(4)] == ["failed"] + ["success"] * 3
    assert [states.get(("execute.stage_out", i)) for i in range(4)] == (
        ["upstream_failed"] + ["success"] * 3), states
    assert [states[("scoring.executed", i)] for i in (0, 1)] == ["failed", "success"]
    assert [states[("scoring.record_results", i)] for i in (0, 1)] == ["upstream_failed", "success"]
    assert (states[("announce_results", -1)], states[("all_recorded", -1)]) == ("success", "failed")
    assert run.state == "failed"
    logs = capfd.readouterr()
    assert "is not scored: execute shard 0/2: failed" in logs.out + logs.err


def test_a_sandbox_stage_s_trigger_rule_is_its_first_step_s(docker_runtime):
    """testgen's and translate's validate start when every shard of the stage before has ended
    and one succeeded (a failed shard stops its own shard only): on the docker runtime that is
    stage_in's rule; run and stage_out still need their own step's success."""
    with _dag("stage_docker_mapped_rule") as dag:
        stage_task_mapped("validate", SHARDS, sandbox=True, trigger_rule="all_done_min_one_success")
    assert [dag.get_task(f"validate.{s}").trigger_rule for s in STEPS] == [
        "all_done_min_one_success", "all_success", "all_success"]
    for dag_id, after in (("multiplt_testgen", "write"), ("multiplt_translate", "collect")):
        chained = load_dag(dag_id)
        assert [chained.get_task(f"validate.{s}").trigger_rule for s in STEPS] == [
            "all_done_min_one_success", "all_success", "all_success"], dag_id
        assert chained.get_task(after).trigger_rule == "all_done_min_one_success"
