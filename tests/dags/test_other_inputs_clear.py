"""A cleared multiplt_testgen run (Airflow 3.3.2 resets its start date) triggers a run for an
event that the next Asset-triggered run also takes as its newest: that run skips plan, so the
input is processed once. A module of its own: its scheduler scenario needs a fresh database
(the airflow_db fixture is per module)."""

from __future__ import annotations

from tests.dags.test_other_inputs import (_announce, _asset_runs, _run_tasks, _scheduled_testgen,
                                          _scheduler_loop, _set_state)


def test_with_airflow_s_scheduler_a_cleared_run_s_triggered_input_is_not_processed_twice(
        airflow_db, tmp_path, monkeypatch):
    """Run `first` fails; while a run of another input holds max_active_runs, corpus E is
    announced (it queues the next Asset-triggered run). `first` is cleared: Airflow resets its
    start date, so, started again, its other_inputs takes E (announced before it started, in no
    run yet) for one no run takes and triggers a run for it; the Asset-triggered run created
    afterwards has E as its newest event and skips plan: E is processed once."""
    from airflow import settings as airflow_settings
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    runner, dag = _scheduled_testgen(monkeypatch, tmp_path)
    processed: list[str | None] = []

    _announce("file:///c/a/functions")
    _scheduler_loop(runner)
    [first] = _asset_runs()
    _set_state(first, "running")
    mine, started = _run_tasks(dag, first)
    processed += [mine, *started]
    _set_state(first, "failed")
    trigger_dag("multiplt_testgen", triggered_by=DagRunTriggeredByType.OPERATOR,
                run_type=DagRunType.OPERATOR_TRIGGERED, run_id="announced__other",
                conf={"functions": "file:///c/z/functions"}, replace_microseconds=False)
    _set_state("announced__other", "running")
    _announce("file:///c/e/functions")
    _scheduler_loop(runner)
    assert _asset_runs() == [first]  # at max_active_runs: E waits in the queue
    session = airflow_settings.Session()  # Clear run `first`, as the UI and REST API do
    SerializedDagModel.get_dag("multiplt_testgen", session=session).clear(
        run_id=first, task_ids=None, session=session)
    session.commit()
    _set_state("announced__other", "success")
    _scheduler_loop(runner)
    _set_state(first, "running")
    mine, started = _run_tasks(dag, first)
    assert started == ["file:///c/e/functions"]  # E: a run of its own
    processed += started
    _set_state(first, "success")
    for _ in range(3):
        _scheduler_loop(runner)
    [second] = _asset_runs()[1:]  # created from E's queued event
    _set_state(second, "running")
    mine, started = _run_tasks(dag, second)
    assert mine is None and started == []  # plan skipped: E's run processes it
    processed += [mine, *started]
    assert [p for p in processed if p] == ["file:///c/a/functions", "file:///c/e/functions"]
