"""The main job's report (scripts/embedded_airflow.py `_run_chain`, after `chain_job.follow`)
where a REST answer it needs cannot be read, on the simulated REST API
(tests/support/simulated_airflow.py): the report takes the Asset events `follow` already read
(`job.events`) and names in one line the runs whose events Airflow cannot give (a run they
created marked failed before it ever started: HTTP 500 for good), and a section whose REST read
fails (a run's skipped or failed tasks, the Hub repos of a publication) is one line naming what
could not be read, the rest of the report printed. The repros failed before their fix."""

from __future__ import annotations

import itertools

import pytest

from multiplt_airflow import chain_job, chain_report
from multiplt_airflow.rest import AirflowAPIError
from tests.support.simulated_airflow import BASE_RUN, SimulatedAirflow, run_main_job


@pytest.fixture(autouse=True)
def docker_runtime(monkeypatch):
    """Every language can run (the stages would run in the images)."""
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RUNTIME", "docker")


def _mark_failed(client, dag_id, run_id):
    """As the UI's "mark failed" does: a PATCH of the run's state."""
    client.request("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", {"state": "failed"})


def _publish_of(source_dag, monkeypatch):
    """A simulated Airflow where the multiplt_publish run that the events of the job's
    `source_dag` run created is marked failed while still queued (publish's runs start at the
    scheduler's next turn), and the clock runs a second per reading."""
    clock = itertools.count()
    monkeypatch.setattr(chain_job.time, "monotonic", lambda: float(next(clock)))
    client = SimulatedAirflow(paused=True, late=["multiplt_publish"])
    trigger = client.trigger

    def and_failed_in_the_ui(dag_id, conf=None, unpause=True, run_id=None):
        got = trigger(dag_id, conf, unpause, run_id)
        if dag_id == "multiplt_evaluate":  # the chain's runs have all been created by then
            [source] = client.runs[source_dag]
            [event] = [e for e in client.events[source["dag_run_id"]]
                       if "multiplt_publish" in chain_job.consumers(e["name"])]
            [created] = [r["run_id"] for r in event["created_dagruns"]
                         if r["dag_id"] == "multiplt_publish"]
            assert client._find("multiplt_publish", created)["start_date"] is None
            _mark_failed(client, "multiplt_publish", created)
            client.failed_publish = created
        return got

    client.trigger = and_failed_in_the_ui
    return client


def test_unreadable_events_of_an_evaluate_run_are_one_line_not_the_end_of_the_report(
        tmp_path, monkeypatch, capsys):
    """The repro: the publish run that the base model's evaluation's event created is marked
    failed while queued, so Airflow answers HTTP 500 for that evaluation's events for good.
    `follow` ended (the failed run is the job's), but the report read those events again,
    retried ~30 s and ended the job with `GET /api/v2/assets/events... HTTP 500`: no pass@k
    table, no run list, and the job's runs "stopped". Now the report names the gap and goes on
    (exit code 1: a run failed, no result known)."""
    client = _publish_of("multiplt_evaluate", monkeypatch)
    reads, followed = [], []  # the events read after follow returned
    request, follow = client.request, chain_job.follow

    def counted(method, path, body=None, ok=(200, 201, 204)):
        if followed and path.startswith("/api/v2/assets/events"):
            reads.append(path)
        return request(method, path, body, ok)

    def and_then(*args, **kwargs):
        runs = follow(*args, **kwargs)
        followed.append(True)
        return runs

    client.request = counted
    monkeypatch.setattr(chain_job, "follow", and_then)
    rc = run_main_job(tmp_path, monkeypatch, "lua", client)
    captured = capsys.readouterr()
    out = captured.out
    assert rc == 1
    [evaluate] = client.runs["multiplt_evaluate"]
    failed = client.failed_publish
    assert f"multiplt_publish {failed}: failed" in out.splitlines()
    assert (f"pass@k: the results of multiplt_evaluate {evaluate['dag_run_id']} are not known: "
            f"its Asset events cannot be read (Airflow answers HTTP 500 for them while "
            f"multiplt_publish {failed}, a run they created, has never started)") in out
    # the rest of the report is there: the funnels, every run, the finetune checkpoints
    assert "funnel of every stage" in out and "finetune:" in out
    assert f"multiplt_evaluate {evaluate['dag_run_id']}: success" in out.splitlines()
    assert "no results of this job" in captured.err
    # the report asked no events again: it has those follow read, and these cannot be read
    assert followed and reads == []
    # the job ended normally: it stopped nothing
    assert client.patched == [("multiplt_publish", failed, {"state": "failed"})]
    assert "stopping the job's runs" not in out


def test_unreadable_events_of_a_finetune_run_are_one_line_of_the_finetune_section(
        tmp_path, monkeypatch, capsys):
    """The same with the publish run of finetune's checkpoints event: the report's finetune
    section names the run whose checkpoints are unknown (not "no checkpoint announced"), and
    the pass@k table of the base model's evaluation is printed."""
    client = _publish_of("multiplt_finetune", monkeypatch)
    rc = run_main_job(tmp_path, monkeypatch, "lua", client)
    out = capsys.readouterr().out
    assert rc == 1
    [finetune] = client.runs["multiplt_finetune"]
    lines = out.splitlines()
    at = lines.index("finetune:")
    assert lines[at + 1] == (
        f"  multiplt_finetune {finetune['dag_run_id']}: its checkpoints are not known: its Asset "
        f"events cannot be read (Airflow answers HTTP 500 for them while multiplt_publish "
        f"{client.failed_publish}, a run they created, has never started)")
    assert "finetune: no checkpoint announced" not in out
    assert "pass@k of /m (epoch 0" in out  # the evaluation's events were read by follow
    assert f"multiplt_publish {client.failed_publish}: failed" in lines


def test_events_follow_did_not_read_are_asked_again_then_one_line(monkeypatch):
    """A run whose events `follow` has not read (job_events' fallback): read through the REST
    API, asked again after an HTTP 500; an answer that stays an error is (run, why), not the
    report's end. A run whose events follow read is not asked again."""
    monkeypatch.setattr(chain_job.time, "sleep", lambda s: None)
    client = SimulatedAirflow(paused=False)
    since = client.clock
    client.trigger("multiplt_evaluate", {}, run_id="e1")
    client.trigger("multiplt_evaluate", {}, run_id="e2")
    client.trigger("multiplt_evaluate", {}, run_id="e3")
    job = chain_job.ChainJob(since, "file:///d/main_job/t")
    job.events[("multiplt_evaluate", "e3")] = [{"name": "as follow read it"}]
    request, answers = client.request, {"e1": [500], "e2": [404] * 10}
    asked = []

    def failing(method, path, body=None, ok=(200, 201, 204)):
        run_id = next((r for r in ("e1", "e2", "e3") if f"source_run_id={r}&" in path), None)
        asked.append(run_id)
        if answers.get(run_id):
            raise AirflowAPIError(method, path, answers[run_id].pop(), "no")
        return request(method, path, body, ok)

    client.request = failing
    runs = [{"dag_run_id": r} for r in ("e1", "e2", "e3")]
    events, unknown = chain_report.job_events(client, job, "multiplt_evaluate", runs)
    assert asked == ["e1", "e1", "e2"]  # e1 asked again after its 500; e2's 404 is an answer
    assert events == [*client.events["e1"], {"name": "as follow read it"}]
    assert chain_report.result_runs(events) == {BASE_RUN}
    [(run, why)] = unknown
    assert run == "multiplt_evaluate e2"
    assert why.startswith("its Asset events could not be read (AirflowAPIError: GET "
                          "/api/v2/assets/events?") and why.endswith("-> HTTP 404: no)")


@pytest.mark.parametrize("status", [500, 403])
def test_a_run_whose_tasks_cannot_be_read_is_one_line_and_the_report_goes_on(
        tmp_path, monkeypatch, capsys, status):
    """The repro: a failed testgen run whose task instances Airflow would not give (an HTTP 500
    that stays, asked again; a 403) ended the job with that error after `follow`: no other run
    listed, no pass@k table, and the job's runs "stopped". Now the run's skipped and failed
    tasks are a line each saying they could not be read, and the report goes on."""
    client = SimulatedAirflow(paused=True, fail={
        "multiplt_testgen": ("execute", 0, "multiplt testgen: error: boom")})
    task_instances = client.task_instances

    def refused(dag_id, run_id):
        if dag_id == "multiplt_testgen":
            raise AirflowAPIError("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                                  status, "refused")
        return task_instances(dag_id, run_id)

    client.task_instances = refused
    rc = run_main_job(tmp_path, monkeypatch, "lua", client)
    out = capsys.readouterr().out
    assert rc == 1
    [testgen] = client.runs["multiplt_testgen"]
    lines = out.splitlines()
    at = lines.index(f"multiplt_testgen {testgen['dag_run_id']}: failed")
    said = (f"AirflowAPIError: GET /api/v2/dags/multiplt_testgen/dagRuns/{testgen['dag_run_id']}"
            f"/taskInstances -> HTTP {status}: refused)")
    assert lines[at + 1:at + 3] == [f"  (its skipped tasks could not be read: {said}",
                                    f"  (its failed tasks could not be read: {said}"]
    [evaluate] = client.runs["multiplt_evaluate"]
    assert f"multiplt_evaluate {evaluate['dag_run_id']}: success" in lines
    assert "pass@k of /m (epoch 0" in out
    assert "stopping the job's runs" not in out and client.patched == []


def test_a_hub_repo_that_cannot_be_read_is_one_line_of_the_publish_section(monkeypatch):
    """The repro: with --publish-repo, the Hub not answering (a connection refused, which
    huggingface_hub raises as httpx2.ConnectError, no OSError) ended the main job with a
    traceback after its runs had ended; an HTTP 500 said the repo was "not on the Hub". Now
    each repo that cannot be read is a line saying so; one the Hub does not have is "not on
    the Hub"; an error that is no answer of the Hub still raises."""
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    def answer(status):
        return httpx2.Response(status, request=httpx2.Request("GET", "http://hub/api/x"))

    def raising(exc):
        def call(self, *args, **kwargs):
            raise exc
        return call

    publish = [{"dag_run_id": "p1"}]
    monkeypatch.setattr(HfApi, "list_repo_files", raising(
        httpx2.ConnectError("[Errno 111] Connection refused")))
    monkeypatch.setattr(HfApi, "list_repo_refs", raising(
        HfHubHTTPError("500 Server Error: boom", response=answer(500))))
    assert chain_report.hub_lines("me/run", publish) == [
        "publish: dataset me/run: could not be read (ConnectError: [Errno 111] Connection "
        "refused)",
        "publish: model me/run: could not be read (HTTP 500: 500 Server Error: boom)"]
    monkeypatch.setattr(HfApi, "list_repo_refs", raising(
        RepositoryNotFoundError("404 Client Error: Repository Not Found", response=answer(404))))
    assert chain_report.hub_lines("me/run", publish)[1] == (
        "publish: model me/run: not on the Hub (404 Client Error: Repository Not Found)")
    monkeypatch.setattr(HfApi, "list_repo_refs", raising(ValueError("a bug")))
    with pytest.raises(ValueError, match="a bug"):
        chain_report.hub_lines("me/run", publish)
