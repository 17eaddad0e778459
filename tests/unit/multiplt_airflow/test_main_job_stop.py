"""How an interrupted main job (scripts/embedded_airflow.py main-job) stops its runs and sets
everything back, on the simulated REST API (tests/support/simulated_airflow.py) where it
follows Airflow 3.3 more closely: a run an event created that is still queued (its source run's
events unreadable, HTTP 500), an event for a DAG at its max_active_runs (no run, a queued
event), a REST call that fails, a second Ctrl-C while the job ends, a Ctrl-C as a trigger call
returns, a transient error while the job follows its runs. The reviews' repros: each test
failed before its fix."""

from __future__ import annotations

import os
import signal
import urllib.error

import pytest

from multiplt_airflow import chain_job
from multiplt_airflow.rest import AirflowAPIError
from tests.support.airflow import load_launcher
from tests.support.simulated_airflow import SimulatedAirflow, run_main_job

BEFORE = {"multiplt_publish": ('{"dataset_repo": "me/real-datasets"}', "mine")}


@pytest.fixture(autouse=True)
def docker_runtime(monkeypatch):
    """Every language can run (the stages would run in the images)."""
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RUNTIME", "docker")


def _states(client, dag_id):
    return [(r["dag_run_id"], r["state"]) for r in client.runs[dag_id]]


def _recording_pauses(client):
    """client.set_paused recording its calls."""
    set_paused, calls = client.set_paused, []

    def recorded(dag_id, paused):
        calls.append((dag_id, paused))
        set_paused(dag_id, paused)

    client.set_paused = recorded
    return calls


def test_a_run_an_event_created_that_is_still_queued_is_stopped(tmp_path, monkeypatch, capsys):
    """The review's repro: Ctrl-C while the testgen run corpus's event created was still
    queued. The job paused every chain DAG first, so the run never started, and while it is
    queued Airflow answers 500 for corpus's events: the job never found it, and it ran later
    with the Variables set back. Now the DAGs stay unpaused while the job stops its runs: the
    scheduler starts the run, the events are read, the run is marked failed."""
    launcher = load_launcher()
    client = SimulatedAirflow(paused=False, variables=BEFORE, late=["multiplt_testgen"],
                              hold=["multiplt_testgen"], interrupt=(1, KeyboardInterrupt()))
    pauses = _recording_pauses(client)
    with pytest.raises(KeyboardInterrupt):
        run_main_job(tmp_path, monkeypatch, "lua", client, launcher=launcher)
    out = capsys.readouterr().out
    [(testgen, state)] = _states(client, "multiplt_testgen")
    assert state == "failed"
    assert f"multiplt_testgen {testgen}" in out.split("marked the job's unfinished runs failed")[1]
    # no chain DAG was paused while the job stopped its runs (Airflow queues no event for a
    # paused DAG: someone else's would have been lost), and none is paused after
    stopping = pauses[pauses.index(("multiplt_publish", False)) + 1:]
    assert not [call for call in stopping if call[1]], stopping
    assert not any(client.paused.values()) and client.stored == BEFORE


def test_a_queued_run_that_cannot_start_leaves_its_dag_paused(tmp_path, monkeypatch, capsys):
    """The run corpus's event created stays queued (someone started a testgen run of their own
    by hand before the scheduler got to it; max_active_runs=1), so corpus's events cannot be
    read: the job cannot tell whose the queued run is. Unpaused again, the DAG would start it
    with the Variables set back; it stays paused, and the output says why."""
    launcher = load_launcher()
    client = SimulatedAirflow(paused=False, variables=BEFORE, late=["multiplt_testgen"],
                              hold=["multiplt_testgen", "multiplt_evaluate"],
                              max_active_runs={"multiplt_testgen": 1},
                              interrupt=(13, KeyboardInterrupt()))
    trigger = client.trigger

    def and_someone_elses(dag_id, conf=None, unpause=True, run_id=None):
        got = trigger(dag_id, conf, unpause, run_id)
        if dag_id == "multiplt_corpus":  # a testgen run by hand, started at once
            client._run("multiplt_testgen", {"model": "someone/else"})
            client._start(client.runs["multiplt_testgen"][-1])
        return got

    client.trigger = and_someone_elses
    with pytest.raises(KeyboardInterrupt):
        run_main_job(tmp_path, monkeypatch, "lua", client, launcher=launcher)
    out = capsys.readouterr().out
    [(queued, state), (_theirs, theirs)] = _states(client, "multiplt_testgen")
    assert (state, theirs) == ("queued", "running")
    [(corpus, _)] = _states(client, "multiplt_corpus")
    assert client.paused["multiplt_testgen"]
    assert (f"multiplt_testgen left paused: its queued run {queued} may be the job's (the Asset "
            f"events of multiplt_corpus {corpus} could not be read): once unpaused it would start "
            f"(mark the job's failed, then unpause it)") in out
    assert not any(client.paused[d] for d in chain_job.CHAIN if d != "multiplt_testgen")
    assert client.stored == BEFORE


def test_the_jobs_queued_events_leave_their_dag_paused(tmp_path, monkeypatch, capsys):
    """The review's repro: a publish run of someone else works (max_active_runs=1), so Airflow
    defers the runs of the job's events for multiplt_publish: they stay queued. The job waited
    180 s for them and gave up; interrupted, it unpaused multiplt_publish again at once, which
    would have published the job's tiny-model dataset with the user's restored settings. Now
    the job waits while publish is busy, and once interrupted leaves publish paused, saying so;
    the user's run is not touched."""
    launcher = load_launcher()
    client = SimulatedAirflow(paused=False, variables=BEFORE, hold=["multiplt_publish"],
                              max_active_runs={"multiplt_publish": 1},
                              interrupt=(13, KeyboardInterrupt()))
    client._run("multiplt_publish", {"dataset_repo": "me/real-datasets"})  # theirs, working
    with pytest.raises(KeyboardInterrupt):
        run_main_job(tmp_path, monkeypatch, "lua", client, launcher=launcher)
    out = capsys.readouterr().out
    assert _states(client, "multiplt_publish") == [("multiplt_publish_1", "running")]
    assert client.deferred["multiplt_publish"] and client.queued["multiplt_publish"]
    assert client.paused["multiplt_publish"]
    assert ("multiplt_publish left paused: the job's Asset events multiplt_checkpoints, "
            "multiplt_dataset_lua, multiplt_results are queued for it: once unpaused it would "
            "start a run on the job's outputs (DELETE /api/v2/dags/multiplt_publish/assets/"
            "queuedEvents drops the queued events; then unpause it)") in out
    assert not any(client.paused[d] for d in chain_job.CHAIN if d != "multiplt_publish")
    assert client.stored == BEFORE and client.cleared_queues == []


def test_a_deferred_run_is_stopped_once_the_jobs_run_before_it_is(tmp_path, monkeypatch, capsys):
    """The job's own publish run works; the runs of the job's later events for publish are
    deferred (max_active_runs=1). Interrupted, the job fails its publish run; the scheduler
    then creates the run of the queued events, which the job finds and fails too: nothing of
    the job is left queued, and publish is unpaused again as it was."""
    launcher = load_launcher()
    client = SimulatedAirflow(paused=False, variables=BEFORE, hold=["multiplt_publish"],
                              max_active_runs={"multiplt_publish": 1},
                              interrupt=(13, KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        run_main_job(tmp_path, monkeypatch, "lua", client, launcher=launcher)
    out = capsys.readouterr().out
    assert _states(client, "multiplt_publish") == [("multiplt_publish_1", "failed"),
                                                   ("multiplt_publish_2", "failed")]
    assert not client.deferred and not client.queued
    assert ("marked the job's unfinished runs failed (they do not resume when Airflow starts "
            "again): multiplt_publish multiplt_publish_1, multiplt_publish multiplt_publish_2"
            ) in out
    assert not any(client.paused.values()) and client.stored == BEFORE


def test_a_failed_call_while_stopping_skips_nothing_else(tmp_path, monkeypatch, capsys):
    """The review's repro: one HTTP 500 ("database is locked") on a PATCH while the job stopped
    its runs ended the clean-up: the other runs, the paused flags and the Variables were left.
    Now the other runs are stopped, the flags and Variables set back, and the call that kept
    failing is named."""
    launcher = load_launcher()
    client = SimulatedAirflow(paused=False, variables=BEFORE,
                              hold=["multiplt_evaluate", "multiplt_publish"],
                              interrupt=(13, KeyboardInterrupt()))
    request = client.request

    def locked(method, path, body=None, ok=(200, 201, 204)):
        if method == "PATCH" and "/dags/multiplt_evaluate/dagRuns/" in path:
            raise AirflowAPIError(method, path, 500, "(sqlite3.OperationalError) database is "
                                                     "locked")
        return request(method, path, body, ok)

    client.request = locked
    with pytest.raises(KeyboardInterrupt):
        run_main_job(tmp_path, monkeypatch, "lua", client, launcher=launcher)
    captured = capsys.readouterr()
    [(evaluate, state)] = _states(client, "multiplt_evaluate")
    assert state == "running"  # its PATCH failed every time
    assert [s for _, s in _states(client, "multiplt_publish")] == ["failed", "failed"]
    assert (f"main-job: could not mark multiplt_evaluate {evaluate} failed (AirflowAPIError: "
            f"PATCH ") in captured.err and "database is locked" in captured.err
    assert not any(client.paused.values()) and client.stored == BEFORE


def test_a_run_that_succeeds_as_it_is_marked_failed_is_named_so(tmp_path, monkeypatch,
                                                                  capsys):
    """CI's failure: the corpus run ended as the job marked it failed, the scheduler's write of
    its success landed last (SQLite), and the job said it had marked it failed. Now a run that a
    later scan finds succeeded is named as such, and the run its event created is stopped."""
    launcher = load_launcher()
    client = SimulatedAirflow(paused=False, variables=BEFORE, hold=["multiplt_corpus",
                              "multiplt_evaluate", "multiplt_testgen"],
                              lost_patch=["multiplt_corpus"], interrupt=(1, KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        run_main_job(tmp_path, monkeypatch, "lua", client, launcher=launcher)
    out = capsys.readouterr().out
    [(corpus, state)] = _states(client, "multiplt_corpus")
    [(testgen, testgen_state)] = _states(client, "multiplt_testgen")
    [(evaluate, _)] = _states(client, "multiplt_evaluate")
    assert (state, testgen_state) == ("success", "failed")
    marked = out.split("marked the job's unfinished runs failed")[1].splitlines()[0]
    assert f"multiplt_testgen {testgen}" in marked and f"multiplt_evaluate {evaluate}" in marked
    assert "multiplt_corpus" not in marked
    assert (f"ended on their own with success as they were marked failed: multiplt_corpus {corpus}"
            in out)
    assert not any(client.paused.values()) and client.stored == BEFORE


def test_a_ctrl_c_as_the_trigger_call_returns_leaves_no_run_behind(tmp_path, monkeypatch,
                                                                   capsys):
    """The review's repro: Ctrl-C after Airflow created the base model's evaluation run but
    before its run id came back: the job did not know the run, which went on. Now the job
    chooses the run id and counts the run as its own before the call."""
    launcher = load_launcher()
    client = SimulatedAirflow(paused=True, hold=["multiplt_evaluate"])
    trigger = client.trigger

    def interrupted(dag_id, conf=None, unpause=True, run_id=None):
        got = trigger(dag_id, conf, unpause, run_id)
        if dag_id == "multiplt_evaluate":
            raise KeyboardInterrupt  # as urlopen reads the answer
        return got

    client.trigger = interrupted
    with pytest.raises(KeyboardInterrupt):
        run_main_job(tmp_path, monkeypatch, "lua", client, launcher=launcher)
    [(run_id, state)] = _states(client, "multiplt_evaluate")
    assert state == "failed" and run_id.startswith("manual__")
    assert f"multiplt_evaluate {run_id}" in capsys.readouterr().out


@pytest.fixture
def handlers():
    """SIGINT raises KeyboardInterrupt and SIGTERM the launcher's Terminated, as in main()."""
    launcher = load_launcher()
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, launcher._interrupt)
    yield launcher
    for sig, handler in before.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_second_signal_while_the_job_ends_waits_for_the_end(tmp_path, monkeypatch, capsys,
                                                              handlers, sig):
    """The review's repro: a second Ctrl-C while the interrupted job stopped its runs left the
    Variables with the job's settings and the DAGs as the job had them. Now Ctrl-C and SIGTERM
    wait until the job has ended (one line says so), and the first interruption goes on."""
    launcher = handlers
    client = SimulatedAirflow(paused=True, variables=BEFORE, hold=["multiplt_evaluate"],
                              interrupt=(13, KeyboardInterrupt()))
    real_stop = chain_job.stop_runs

    def stop_and_a_signal(c, job, **kwargs):
        os.kill(os.getpid(), sig)  # pressed again while the job ends
        return real_stop(c, job, **kwargs)

    monkeypatch.setattr(chain_job, "stop_runs", stop_and_a_signal)
    with pytest.raises(KeyboardInterrupt) as got:
        run_main_job(tmp_path, monkeypatch, "lua", client, launcher=launcher)
    assert type(got.value) is KeyboardInterrupt  # the first one, not the deferred signal
    captured = capsys.readouterr()
    assert [s for _, s in _states(client, "multiplt_evaluate")] == ["failed"]
    assert all(client.paused.values()) and client.stored == BEFORE
    assert "main-job: still ending the job" in captured.err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers back


def test_a_third_signal_while_the_job_ends_stops_it_at_once(tmp_path, monkeypatch, capsys,
                                                           handlers):
    """Where Airflow's API server does not answer, each call of the clean-up waits for its
    timeout: the third Ctrl-C stops at once, leaving the rest undone."""
    launcher = handlers
    client = SimulatedAirflow(paused=True, variables=BEFORE, hold=["multiplt_evaluate"],
                              interrupt=(13, KeyboardInterrupt()))

    def pressed_thrice(c, job, **kwargs):
        for _ in range(3):
            os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("not stopped at once")

    monkeypatch.setattr(chain_job, "stop_runs", pressed_thrice)
    with pytest.raises(launcher.Forced):
        run_main_job(tmp_path, monkeypatch, "lua", client, launcher=launcher)
    assert client.stored != BEFORE  # not set back: stopped at once
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_ctrl_c_while_a_finished_job_sets_its_variables_back_comes_after(
        tmp_path, monkeypatch, capsys, handlers):
    """A job that ended normally: a Ctrl-C while it sets its Variables back waits until they are
    back, then interrupts (main exits 130)."""
    launcher = handlers
    client = SimulatedAirflow(paused=True, variables=BEFORE)
    real_restore = chain_job.restore_variables

    def restore_and_ctrl_c(*args):
        os.kill(os.getpid(), signal.SIGINT)
        return real_restore(*args)

    monkeypatch.setattr(chain_job, "restore_variables", restore_and_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run_main_job(tmp_path, monkeypatch, "lua", client, launcher=launcher)
    assert client.stored == BEFORE and client.patched == []


@pytest.mark.parametrize("error", [
    AirflowAPIError("GET", "/api/v2/dags/multiplt_publish/dagRuns", 500,
                    "(sqlite3.OperationalError) database is locked"),
    ConnectionResetError(104, "Connection reset by peer"),
    urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))],
    ids=["http-500", "reset", "refused"])
def test_a_transient_error_while_following_is_asked_again(tmp_path, monkeypatch, capsys, error):
    """The review's repro: one HTTP 500 while the job followed its runs failed every one of them
    (the job ended as after an API error). Now the poll is made again."""
    # runs are listed 6 at a time (one per chain DAG): the error comes in the first poll
    client = SimulatedAirflow(paused=True, variables=BEFORE, interrupt=(2, error))
    assert run_main_job(tmp_path, monkeypatch, "lua", client) == 0
    assert client.interrupt is None  # the error came
    assert client.patched == [] and client.stored == BEFORE
    assert all(r["state"] == "success" for d in chain_job.CHAIN for r in client.runs[d])


def test_a_heartbeat_that_cannot_read_the_tasks_is_one_line(capsys):
    """The tasks at work are shown once a minute: a REST call failing there does not end the
    job."""
    launcher = load_launcher()

    class Client:
        def task_instances(self, dag_id, run_id):
            raise AirflowAPIError("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                                  500, "database is locked")

    launcher.heartbeat(Client(), [{"dag_id": "multiplt_evaluate", "dag_run_id": "r1",
                                   "state": "running"}])
    [line] = capsys.readouterr().out.splitlines()
    assert line.endswith("still running: multiplt_evaluate r1: (its tasks could not be read: "
                         "AirflowAPIError: GET /api/v2/dags/multiplt_evaluate/dagRuns/r1/"
                         "taskInstances -> HTTP 500: database is locked)")


@pytest.fixture
def no_airflow(monkeypatch):
    """EmbeddedAirflow that starts and stops nothing."""
    from multiplt_airflow.embedded import EmbeddedAirflow

    monkeypatch.setattr(EmbeddedAirflow, "start", lambda self, timeout=300: self)
    monkeypatch.setattr(EmbeddedAirflow, "stop", lambda self, grace=30: None)
    monkeypatch.setattr(EmbeddedAirflow, "login_text", lambda self: "login")
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in before.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("error, said", [
    (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")),
     "main-job: Airflow's API server (http://127.0.0.1:{port}) did not answer (URLError: "
     "<urlopen error [Errno 111] Connection refused>); its log is in "),
    (ConnectionResetError(104, "Connection reset by peer"),
     "main-job: Airflow's API server (http://127.0.0.1:{port}) did not answer "
     "(ConnectionResetError: [Errno 104] Connection reset by peer); its log is in "),
    (RuntimeError("DAG multiplt_testgen failed to import:\nTraceback (most recent call last):\n"
                  "  File \"dags/multiplt_testgen.py\", line 3\nSyntaxError: invalid syntax\n"),
     "main-job: DAG multiplt_testgen failed to import: SyntaxError: invalid syntax\n")],
    ids=["refused", "reset", "import-error"])
def test_an_error_of_airflow_is_one_line(tiny_model, tmp_path, capsys, no_airflow, error, said):
    """The review's repro: the API server gone (connection refused or reset) or a DAG's import
    error (wait_for_dag's message holds the traceback) ended main-job with a traceback."""
    launcher = load_launcher()

    def job(airflow, args):
        raise error

    launcher.main_job = job
    port = 45678
    rc = launcher.main(["--home", str(tmp_path / "h"), "--data", str(tmp_path / "d"),
                        "--port", str(port), "main-job", "--model", tiny_model, "--languages",
                        "py", "--exit-when-done"])
    err = capsys.readouterr().err
    assert rc == 1
    assert len(err.splitlines()) == 1 and err.startswith(said.format(port=port)), err


@pytest.mark.parametrize("reader", ["skip_reasons"])
def test_a_transient_error_while_the_report_is_read_is_asked_again(tmp_path, monkeypatch, capsys, reader):
    """After `follow`, the report's REST reads (skipped tasks; the Asset events are those follow
    read: tests/unit/multiplt_airflow/test_main_job_report.py) ask again after one HTTP 500, as
    the polls do: a finished job is not ended without its report."""
    client = SimulatedAirflow(paused=True, variables=BEFORE)
    real, real_follow = getattr(chain_job, reader), chain_job.follow
    calls, followed = [], []

    def follow(*args, **kwargs):
        runs = real_follow(*args, **kwargs)
        followed.append(True)
        return runs

    def locked_once(*args):
        if followed:  # the report's reads (follow's own polls read events too)
            calls.append(args)
            if len(calls) == 1:
                raise AirflowAPIError("GET", "/api/v2/assets/events", 500, "database is locked")
        return real(*args)

    monkeypatch.setattr(chain_job, "follow", follow)
    monkeypatch.setattr(chain_job, reader, locked_once)
    monkeypatch.setattr(chain_job.time, "sleep", lambda s: None)
    assert run_main_job(tmp_path, monkeypatch, "lua", client) == 0
    assert len(calls) >= 2
    assert client.patched == [] and client.stored == BEFORE
