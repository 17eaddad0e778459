"""A multiplt_evaluate run that failed recovers when its failed tasks are cleared ("Clear run ->
only failed" in the UI, REST `only_failed`): a language whose generate failed, generated on the
rerun, is executed (by execute_late: execute and shard_commands were successes, so they do not
run again), scored, recorded and announced (announce_recovered), and the run ends success.
Without execute_late, `scoring.executed` failed "execute shard 0/1: not run" on every such rerun
and nothing said how to recover (multiplt_pipelines.recovery)."""

from __future__ import annotations

import shutil

import pytest

from tests.support.airflow import load_dag
from tests.support.evaluated_airflow import evaluate_conf, replay_sources


def _entry(lang: str, shards: int) -> dict:
    run = f"file:///DATA/evaluate/humaneval-{lang}-m-main-0.2"
    return {"lang": lang, "model": "m", "revision": None, "run": run,
            "execute": [["execute", "--in", run, "--shard", f"{k}/{shards}"] for k in range(shards)]}


# ---- what the recovery tasks compute (multiplt_pipelines.recovery) ----------------------------
def test_late_lanes_are_the_shards_of_the_entries_execute_was_not_planned_for():
    from multiplt_pipelines.recovery import late_lanes

    entries = [_entry("lua", 2), _entry("r", 2), _entry("jl", 1)]
    lanes = [*entries[0]["execute"], *entries[2]["execute"]]
    assert late_lanes(entries, lanes) == entries[1]["execute"]
    assert late_lanes(entries, [a for e in entries for a in e["execute"]]) == []  # one go
    assert late_lanes(entries, None) == [a for e in entries for a in e["execute"]]


def test_an_entry_executed_late_is_followed_through_its_execute_late_shards():
    from multiplt_pipelines.chain import evaluation_results, not_done
    from multiplt_pipelines.recovery import with_late_states

    stages = [("build_benchmark", ["generation.build_benchmark"], False),
              ("generate", ["generation.generate"], False),
              ("execute", ["execute.stage_in", "execute.run"], True)]
    entries = [_entry("lua", 2), _entry("r", 2)]
    lanes, late = entries[0]["execute"], entries[1]["execute"]
    ok = "success"
    states = {"generation.build_benchmark": {0: ok, 1: ok}, "generation.generate": {0: ok, 1: ok},
              "execute.stage_in": {0: ok, 1: ok}, "execute.run": {0: ok, 1: ok},
              "execute_late.stage_in": {0: ok, 1: ok}, "execute_late.run": {0: ok, 1: "failed"}}
    pairs = [("execute.stage_in", "execute_late.stage_in"), ("execute.run", "execute_late.run")]
    merged = with_late_states(states, lanes, pairs)
    assert merged["execute.run"] == {0: ok, 1: ok, 2: ok, 3: "failed"}
    assert not_done(entries[0], 0, lanes + late, merged, stages) is None
    assert not_done(entries[1], 1, lanes + late, merged, stages) == "execute shard 1/2: failed"
    # before the fix: the late shards were looked for among execute's only
    assert not_done(entries[1], 1, lanes, states, stages) == "execute shard 0/2: not run"
    recorded, failed = evaluation_results(entries, lanes + late, merged, stages)
    assert [r["lang"] for r in recorded] == ["lua"] and [f["lang"] for f in failed] == ["r"]


def test_announce_recovered_names_only_what_announce_results_did_not():
    from multiplt_pipelines.recovery import unannounced

    lua, r = ({"lang": e["lang"], "model": "m", "revision": None, "run": e["run"]}
              for e in (_entry("lua", 1), _entry("r", 1)))
    assert unannounced([lua, r], {"runs": [lua], "failed": [{**r, "reason": "x"}]}) == [r]
    assert unannounced([lua, r], None) == [lua, r]  # announce_results was skipped
    assert unannounced([lua, r], {"runs": [lua, r]}) == []


def test_the_recovery_tasks_are_cleared_with_a_failed_generate_or_all_recorded():
    """Only failed and upstream_failed tasks are cleared by "only failed": late_shard_commands
    must be upstream_failed whenever a generate failed, announce_recovered whenever
    all_recorded failed; and a skipped execute_late (nothing late: every normal run) must not
    skip scoring (all_done_min_one_success skips on a skipped upstream)."""
    dag = load_dag("multiplt_evaluate")
    late = dag.get_task("late_shard_commands")
    assert late.trigger_rule == "all_success"
    assert "generation.generate" in late.upstream_task_ids
    assert dag.get_task("late_executed").trigger_rule == "none_failed_min_one_success"
    assert {"execute_late", "late_shard_commands"} <= dag.get_task("late_executed").upstream_task_ids
    executed = dag.get_task("scoring.executed")
    assert not {t for t in executed.upstream_task_ids if t.startswith("execute_late")}
    recovered = dag.get_task("announce_recovered")
    assert recovered.trigger_rule == "none_failed_min_one_success"
    assert {"all_recorded", "announce_results"} <= recovered.upstream_task_ids
    assert [a.name for a in recovered.outlets] == ["multiplt_results"]


class _Ti:
    """The task instance `scoring.executed` asks for the stages' states."""

    def __init__(self, map_index: int, states: dict):
        self.map_index, self.dag_id, self.run_id, self.states = map_index, "multiplt_evaluate", "r1", states

    def get_task_states(self, dag_id, task_ids, run_ids):
        return {"r1": self.states}


def test_a_generate_rerun_on_its_own_names_the_clear_that_recovers_it():
    """generate[1] cleared and rerun alone (no Downstream) after shard_commands and
    late_shard_commands ran: its shards were planned by neither, and the failure says how to
    get them run."""
    from airflow.sdk.exceptions import AirflowFailException

    executed = load_dag("multiplt_evaluate").get_task("scoring.executed")
    entries = [_entry("lua", 1), _entry("r", 1)]
    states = {"generation.build_benchmark_0": "success", "generation.build_benchmark_1": "success",
              "generation.generate_0": "success", "generation.generate_1": "success",
              "execute_0": "success"}
    with pytest.raises(AirflowFailException,
                       match=r"^r m \(.*\) is not scored: execute shard 0/1: not run \(its generate "
                             r"succeeded after its shards were planned: clear the run's failed "
                             r"tasks, Clear -> only failed, or generation.generate\[1\] with "
                             r"Downstream\)$"):
        executed.python_callable(entries[1], entries[0]["execute"], None, ti=_Ti(1, states))
    executed.python_callable(entries[0], entries[0]["execute"], None, ti=_Ti(0, states))


# ---- a run recovered by clearing its failed tasks ---------------------------------------------
@pytest.fixture
def settings(tmp_path, monkeypatch):
    data, store = tmp_path / "data", tmp_path / "results" / "results.parquet"
    monkeypatch.setenv("AIRFLOW__MULTIPLT__DATA_URI", f"file://{data}")
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RESULTS_STORE", f"file://{store}")
    return data, store


def _clear_failed_and_run(dag, run_id: str):
    """What "Clear run -> only failed" does (the REST API's dag.clear(run_id, only_failed=True)
    on the serialized DAG), then dag.test()'s loop over that run (dag.test() itself would start
    a new run)."""
    from sqlalchemy import select

    from airflow import settings as airflow_settings
    from airflow.models.dagrun import DagRun
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.sdk.definitions.dag import _run_task
    from airflow.utils.state import DagRunState, TaskInstanceState

    session = airflow_settings.Session()
    serialized = SerializedDagModel.get_dag(dag.dag_id, session=session)
    serialized.clear(run_id=run_id, task_ids=None, only_failed=True, session=session)
    session.commit()
    run = session.scalar(select(DagRun).where(DagRun.run_id == run_id))
    run.state = DagRunState.RUNNING
    run.dag = serialized
    session.commit()
    for _ in range(100):
        if run.state != DagRunState.RUNNING:
            break
        session.expire_all()
        schedulable, _ = run.update_state(session=session)
        for ti in schedulable:
            ti.try_number += 1
            ti.state = TaskInstanceState.SCHEDULED
        session.commit()
        for ti in run.get_task_instances(session=session):
            if ti.state == TaskInstanceState.SCHEDULED:
                _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
    return run


@pytest.mark.slow
def test_clearing_the_failed_tasks_evaluates_a_language_whose_generate_failed(airflow_db, settings,
                                                                             tmp_path):
    from sqlalchemy import select

    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from multiplt.results import read_store

    _, store = settings
    replay, problems = replay_sources(f"file://{tmp_path / 'refsol'}", ("lua", "r"), 1)
    shutil.move(tmp_path / "refsol" / "replay" / "r", tmp_path / "r-aside")  # r's generate fails
    dag = load_dag("multiplt_evaluate")
    first = dag.test(run_conf=evaluate_conf(replay, problems, ("lua", "r"), shards=1))
    assert first.state == "failed"
    before = {ti.task_id: ti.state for ti in first.get_task_instances() if ti.map_index < 0}
    assert {t: before[t] for t in ("late_shard_commands", "execute_late", "late_executed",
                                   "announce_recovered")} == dict.fromkeys(
        ("late_shard_commands", "execute_late", "late_executed", "announce_recovered"),
        "upstream_failed")  # what "only failed" clears
    assert sorted(set(read_store(f"file://{store}")["lang"].to_list())) == ["lua"]
    shutil.move(tmp_path / "r-aside", tmp_path / "refsol" / "replay" / "r")  # the cause fixed

    run = _clear_failed_and_run(dag, first.run_id)

    tis = {(ti.task_id, ti.map_index): ti for ti in run.get_task_instances()}
    assert run.state == "success", {k: ti.state for k, ti in tis.items()}
    assert sorted(set(read_store(f"file://{store}")["lang"].to_list())) == ["lua", "r"]
    # r's shard ran in execute_late; lua's execute, and shard_commands, did not run again
    assert (tis[("execute_late", 0)].state, tis[("execute", 0)].try_number) == ("success", 1)
    assert tis[("shard_commands", -1)].try_number == 1
    with create_session() as session:
        events = [dict(e.extra or {}) for e in session.scalars(select(AssetEvent).where(
            AssetEvent.source_run_id == run.run_id).order_by(AssetEvent.id))
            if e.asset.name == "multiplt_results"]
    assert [([r["lang"] for r in e["runs"]], [f["lang"] for f in e["failed"]]) for e in events] == [
        (["lua"], ["r"]), (["r"], [])]
