"""multiplt_evaluate follows each entry of its plan (a language of a model) on its own: an entry
whose generate fails is neither executed nor scored, and the others are still scored, recorded
and announced; the run then fails, naming the entry that was not recorded.

The entries' build/generate and score/record are mapped task groups (one instance per entry).
Execute stays one mapped task over the shards of every generated entry (on the docker runtime a
mapped task group of its three sandbox steps), between the two groups:
Airflow refuses a mapped task inside a mapped task group (the canary test below says when that
changes, so that execute can move into the per-entry flow).
"""

from __future__ import annotations

import shutil

import pytest

from tests.support.airflow import load_dag
from tests.support.evaluated_airflow import evaluate_conf, replay_sources

STAGES = [("build_benchmark", ["generation.build_benchmark"], False),
          ("generate", ["generation.generate"], False), ("execute", ["execute"], True),
          ("score", ["scoring.score"], False), ("record_results", ["scoring.record_results"], False)]


def _entry(lang: str, shards: int) -> dict:
    run = f"file:///DATA/evaluate/humaneval-{lang}-m-main-0.2"
    return {"lang": lang, "model": "m", "revision": None, "run": run,
            "execute": [["execute", "--in", run, "--shard", f"{k}/{shards}"] for k in range(shards)]}


# ---- the DAG's structure ----------------------------------------------------------------------
@pytest.mark.parametrize("runtime", ["local", "docker"])
def test_the_stages_of_one_entry_are_the_instances_of_mapped_task_groups(runtime, monkeypatch):
    """Every stage but execute runs once per entry in a mapped task group, so an entry's score
    and record wait for that entry only; execute is mapped over the generated entries' shards
    (docker: a mapped task group of its three sandbox steps, one instance per shard)."""
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RUNTIME", runtime)
    dag = load_dag("multiplt_evaluate")
    groups = {t.task_id: getattr(t.get_closest_mapped_task_group(), "group_id", None)
              for t in dag.tasks}
    per_shard = {f"{stage}.{step}": stage for stage in ("execute", "execute_late")
                 for step in ("stage_in", "run", "stage_out")} if runtime == "docker" else {}
    assert {task_id: group for task_id, group in groups.items() if group} == {
        "generation.build_benchmark": "generation", "generation.generate": "generation",
        "scoring.executed": "scoring", "scoring.score": "scoring",
        "scoring.record_results": "scoring", **per_shard}
    assert dag.get_task("generation.generate").pool == "gpu"
    execute = [t for t in dag.tasks if t.task_id.split(".")[0] == "execute"]
    first = [t for t in execute if not t.upstream_task_ids & {e.task_id for e in execute}]
    assert len(first) == 1 and "shard_commands" in first[0].upstream_task_ids
    assert all(type(t).__name__.endswith("MappedOperator") or t.task_id in per_shard
               for t in execute)
    # the tasks joining the entries wait for every upstream to end, not to succeed
    for task_id in ("shard_commands", "scoring.executed", "announce_results", "all_recorded"):
        assert dag.get_task(task_id).trigger_rule == "all_done_min_one_success", task_id
    assert [a.name for a in dag.get_task("announce_results").outlets] == ["multiplt_results"]
    assert dag.get_task("scoring.record_results").upstream_task_ids >= {"scoring.score"}


def test_airflow_still_refuses_a_mapped_task_inside_a_mapped_task_group():
    """Canary: when an Airflow upgrade accepts this, execute's shards can be mapped inside the
    per-entry flow (after that entry's generate instead of every entry's): move it there."""
    import datetime

    from airflow.sdk import DAG, task, task_group

    with DAG(dag_id="nested_mapping", schedule=None,
             start_date=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)):
        @task
        def shard(argv):
            return argv

        @task_group
        def entry(argvs):
            shard.expand(argv=argvs)

        with pytest.raises(NotImplementedError, match="expanded task group"):
            entry.expand(argvs=[[["execute", "--shard", "0/2"], ["execute", "--shard", "1/2"]]])


# ---- what the joining tasks compute (multiplt_pipelines.chain) --------------------------------
def test_execute_runs_the_shards_of_the_generated_entries_only():
    from multiplt_pipelines.chain import mapped_states, shard_lanes

    entries = [_entry("lua", 2), _entry("r", 2), _entry("jl", 2)]
    states = mapped_states({"generation.generate_0": "success", "generation.generate_1": "failed",
                            "generation.generate_2": "success", "generation.generate": "removed",
                            "generation.generate_x_3": "failed"}, ["generation.generate"])
    assert states == {"generation.generate": {0: "success", 1: "failed", 2: "success"}}
    assert shard_lanes(entries, states["generation.generate"]) == [
        *entries[0]["execute"], *entries[2]["execute"]]


def test_each_entry_is_recorded_or_named_with_the_first_stage_it_did_not_get_through():
    from multiplt_pipelines.chain import evaluation_results, failed_line, not_done

    entries = [_entry("lua", 2), _entry("r", 2), _entry("jl", 2), _entry("ml", 2)]
    lanes = [*entries[0]["execute"], *entries[2]["execute"], *entries[3]["execute"]]
    ok = "success"
    states = {"generation.build_benchmark": {0: ok, 1: ok, 2: ok, 3: ok},
              "generation.generate": {0: ok, 1: "failed", 2: ok, 3: ok},
              "execute": {0: ok, 1: ok, 2: ok, 3: "failed", 4: ok, 5: ok},
              "scoring.score": {0: ok, 1: "skipped", 2: "skipped", 3: ok},
              "scoring.record_results": {0: ok, 1: "skipped", 2: "skipped", 3: "failed"}}
    recorded, failed = evaluation_results(entries, lanes, states, STAGES)
    assert recorded == [{k: entries[0][k] for k in ("lang", "model", "revision", "run")}]
    assert [(f["lang"], f["reason"]) for f in failed] == [
        ("r", "generate: failed"), ("jl", "execute shard 1/2: failed"),
        ("ml", "record_results: failed")]
    assert failed_line(failed[:1]) == f"r m@main ({entries[1]['run']}): generate: failed"
    # the gate before scoring looks at the stages up to execute only, for its own entry
    assert not_done(entries[3], 3, lanes, states, STAGES[:3]) is None
    assert not_done(entries[1], 1, lanes, states, STAGES[:3]) == "generate: failed"
    # an entry missing from the lanes (its generate not yet known to have succeeded)
    assert not_done(entries[1], 1, lanes, {**states, "generation.generate": {1: ok}},
                    STAGES[:3]) == "execute shard 0/2: not run"


# ---- a run where one entry's generate fails ---------------------------------------------------
def _states(run) -> dict[tuple[str, int], str]:
    return {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}


def _results_events(run) -> list[dict]:
    from sqlalchemy import select

    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        events = session.scalars(select(AssetEvent).where(
            AssetEvent.source_dag_id == run.dag_id, AssetEvent.source_run_id == run.run_id)).all()
        return [dict(e.extra or {}) for e in events if e.asset.name == "multiplt_results"]


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    """One data root and results store for the module's runs: the `multiplt_results` Asset of
    the module's database keeps the URI it was first registered with."""
    root = tmp_path_factory.mktemp("evaluate-entries")
    return root / "data", root / "results" / "results.parquet"


@pytest.fixture
def settings(storage, monkeypatch):
    data, store = storage
    monkeypatch.setenv("AIRFLOW__MULTIPLT__DATA_URI", f"file://{data}")
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RESULTS_STORE", f"file://{store}")
    return data, store


@pytest.mark.slow
def test_one_entry_failing_to_generate_leaves_the_other_recorded(airflow_db, settings, tmp_path,
                                                                  capfd):
    """lua and r, r without completions to replay: r's generate fails (bad input, no retry);
    lua is executed, scored, recorded and announced; r is not scored (scoring.executed names
    why), the announcement names r as failed, and all_recorded fails the run."""
    from multiplt.results import read_store

    _, store = settings
    replay, problems = replay_sources(f"file://{tmp_path / 'refsol'}", ("lua", "r"), 2)
    shutil.rmtree(tmp_path / "refsol" / "replay" / "r")

    run = load_dag("multiplt_evaluate").test(
        run_conf=evaluate_conf(replay, problems, ("lua", "r"), shards=2))

    # lua was recorded and announced, r was not and is named
    assert store.exists(), "nothing was recorded"
    table = read_store(f"file://{store}")
    assert sorted(set(table["lang"].to_list())) == ["lua"]
    [extra] = _results_events(run)
    assert [r["lang"] for r in extra["runs"]] == ["lua"]
    assert [(f["lang"], f["reason"]) for f in extra["failed"]] == [("r", "generate: failed")]
    assert run.state == "failed"

    states = _states(run)
    assert states[("generation.generate", 0)] == "success"
    assert states[("generation.generate", 1)] == "failed"
    # execute ran lua's two shards only, and only lua was scored and recorded
    assert {i: s for (t, i), s in states.items() if t == "execute"} == {0: "success", 1: "success"}
    assert [states[("scoring.record_results", i)] for i in (0, 1)] == ["success", "upstream_failed"]
    assert [states[("scoring.executed", i)] for i in (0, 1)] == ["success", "failed"]
    assert (states[("announce_results", -1)], states[("all_recorded", -1)]) == ("success", "failed")
    logs = capfd.readouterr()
    assert "is not scored: generate: failed" in logs.out + logs.err
    assert "1 of 2 evaluations were not recorded: r reference-solutions@main" in logs.out + logs.err


@pytest.mark.slow
def test_no_entry_generated_fails_the_run_with_nothing_executed_or_announced(airflow_db, settings,
                                                                           tmp_path):
    replay, problems = replay_sources(f"file://{tmp_path / 'refsol'}", ("lua",), 1)
    shutil.rmtree(tmp_path / "refsol" / "replay" / "lua")

    run = load_dag("multiplt_evaluate").test(
        run_conf=evaluate_conf(replay, problems, ("lua",), shards=2))

    assert run.state == "failed"
    assert _results_events(run) == []
    states = _states(run)
    assert states[("generation.generate", 0)] == "failed"
    assert states[("shard_commands", -1)] == "failed"
    assert [s for (t, _), s in states.items() if t == "execute"] == ["upstream_failed"]
    assert states[("scoring.record_results", 0)] == "upstream_failed"
    assert (states[("announce_results", -1)], states[("all_recorded", -1)]) == ("skipped", "failed")


def test_a_rerun_with_nothing_to_evaluate_skips_every_task(airflow_db, settings, monkeypatch):
    """`plan` skipped (no `model`, no `rerun_models`): nothing runs, nothing fails."""
    monkeypatch.setenv("AIRFLOW__MULTIPLT__EVALUATE_SCHEDULE", "@weekly")

    run = load_dag("multiplt_evaluate").test(run_conf={"rerun_models": []})

    states = _states(run)
    assert states.pop(("plan", -1)) == "skipped"
    assert set(states.values()) == {"skipped"}, states
    assert run.state == "success"


class _Containers:
    """Stands in for docker.APIClient: every container succeeds; records the command lines."""

    def __init__(self):
        self.commands: list[list[str]] = []

    def images(self, name):
        return [{"Id": name}]

    def create_host_config(self, **kwargs):
        return kwargs

    def create_container(self, **kwargs):
        self.commands.append([*kwargs["entrypoint"], *kwargs["command"]])
        return {"Id": f"c{len(self.commands)}"}

    def attach(self, **kwargs):
        return iter([b"ok\n"])

    def start(self, container_id):
        pass

    def wait(self, container_id):
        return {"StatusCode": 0}

    def remove_container(self, container_id, **kwargs):
        pass

    def remove_volume(self, name):
        pass


def test_docker_runtime_runs_each_entry_s_own_command_lines(airflow_db, settings, monkeypatch):
    """On the docker runtime the groups' stages are DockerOperators whose command is the group
    instance's argument: each entry's build, generate, score and record containers run that
    entry's command lines, once each, and execute's sandbox steps run every shard."""
    from multiplt_airflow.docker_stage import MultipltDockerOperator
    from multiplt_pipelines.plans import evaluation_plan

    monkeypatch.setenv("AIRFLOW__MULTIPLT__RUNTIME", "docker")
    monkeypatch.setenv("AIRFLOW__MULTIPLT__DATA_URI", "s3://bucket/runs")
    # the results store stays the module's (`settings`): the module's database registered the
    # `multiplt_results` Asset under that URI, and another URI of the name would stay inactive
    # (announce_results then fails, depending on which run registered it first)
    _, store = settings
    containers = _Containers()
    monkeypatch.setattr(MultipltDockerOperator, "cli", property(lambda self: containers))
    conf = evaluate_conf("s3://bucket/replay/{lang}", ["HumanEval_0_has_close_elements"],
                         ("lua", "r"), shards=2)

    run = load_dag("multiplt_evaluate").test(run_conf=conf)

    assert run.state == "success", _states(run)
    # recorded in one go: no late shard (execute_late skipped, its join and the scoring not),
    # nothing for announce_recovered (test_evaluate_recovery.py)
    states = _states(run)
    assert [states[(t, -1)] for t in ("late_shard_commands", "execute_late.stage_in",
                                      "execute_late.run", "execute_late.stage_out",
                                      "late_executed", "announce_recovered")] == [
        "success", "skipped", "skipped", "skipped", "success", "skipped"]
    assert [states[("scoring.record_results", i)] for i in (0, 1)] == ["success", "success"]
    params = {**load_dag("multiplt_evaluate").params.dump(), **conf}
    entries = evaluation_plan(params, "s3://bucket/runs", f"file://{store}")
    ran = [c[1:] for c in containers.commands if c[:2] != ["multiplt", "stage"]]
    expected = [e[stage] for e in entries for stage in ("build", "generate", "score", "record")]
    assert sorted(ran) == sorted(expected)
    sandboxed = [c[c.index("--") + 1:] for c in containers.commands
                 if c[:3] == ["multiplt", "stage", "run"]]
    assert sorted(sandboxed) == sorted(argv for e in entries for argv in e["execute"])
