"""How the main job (scripts/embedded_airflow.py main-job) follows its chain on the simulated
REST API (tests/support/simulated_airflow.py) where Airflow 3.3 cannot give a run's Asset
events (HTTP 500 while a run they created has no start_date) or defers the run of an event
(its DAG at max_active_runs): a run of the job marked failed before it ever started ends the
job with its report, not at --timeout, and the runs those unreadable events created that did
start are the job's, waited for and reported (not someone else's run of those DAGs meanwhile);
the heartbeat says what the job waits for when no run of it works. The repros failed before their fix; the test of a single HTTP 500 guards the
fix (it fails where one unreadable answer were enough to count a run as the job's)."""

from __future__ import annotations

import datetime
import functools
import itertools

import pytest

from multiplt_airflow import chain_job
from multiplt_airflow.rest import AirflowAPIError
from tests.support.simulated_airflow import SimulatedAirflow, run_main_job


@pytest.fixture(autouse=True)
def docker_runtime(monkeypatch):
    """Every language can run (the stages would run in the images)."""
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RUNTIME", "docker")


def _mark_failed(client, dag_id, run_id):
    """As the UI's "mark failed" (or the job's stop step) does: a PATCH of the run's state."""
    client.request("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", {"state": "failed"})


def test_a_run_marked_failed_before_it_started_ends_the_job_with_its_report(
        tmp_path, monkeypatch, capsys):
    """The repro: the testgen run corpus's event created is marked failed while still queued.
    It never gets a start_date, so Airflow answers HTTP 500 for corpus's events for good: the
    job took it for a transient error and waited until --timeout ("the chain is still running
    after 30s: []; events of ... unreadable"). Now the job counts that run as its own, failed,
    and ends at once with the usual report naming it (exit code 1)."""
    clock = itertools.count()  # each reading of the clock a second later: a wait ends
    monkeypatch.setattr(chain_job.time, "monotonic", lambda: float(next(clock)))
    client = SimulatedAirflow(paused=True, late=["multiplt_testgen"])
    trigger = client.trigger

    def and_failed_in_the_ui(dag_id, conf=None, unpause=True, run_id=None):
        got = trigger(dag_id, conf, unpause, run_id)
        if dag_id == "multiplt_corpus":
            [queued] = client.runs["multiplt_testgen"]
            assert (queued["state"], queued["start_date"]) == ("queued", None)
            _mark_failed(client, "multiplt_testgen", queued["dag_run_id"])
        return got

    client.trigger = and_failed_in_the_ui
    rc = run_main_job(tmp_path, monkeypatch, "lua", client)
    out = capsys.readouterr().out
    assert rc == 1
    [testgen] = client.runs["multiplt_testgen"]
    assert testgen["start_date"] is None  # never started: its source's events stay unreadable
    report = out.split("runs and the stages that ended empty, were off or failed")[1]
    assert f"multiplt_testgen {testgen['dag_run_id']}: failed" in report.splitlines()
    assert "multiplt_corpus " in report and "multiplt_evaluate " in report
    # the job ended normally: it stopped nothing (the only PATCH is the one of the UI)
    assert client.patched == [("multiplt_testgen", testgen["dag_run_id"], {"state": "failed"})]
    assert "stopping the job's runs" not in out


def test_a_single_500_does_not_make_someone_elses_failed_run_the_jobs(monkeypatch):
    """A run of testgen started by hand after the job's corpus run and marked failed while
    queued, and one HTTP 500 (a locked database) on corpus's events: the job still waits for
    the events and follows its own testgen run; the run by hand is not in its report."""
    monkeypatch.setattr(chain_job.time, "sleep", lambda s: None)
    client = SimulatedAirflow(paused=False)
    left = ["multiplt_translate", "multiplt_finetune"]  # the chain stops after testgen
    client.paused.update(dict.fromkeys(left, True))
    since = client.clock
    job = chain_job.ChainJob(since, "file:///d/main_job/t", paused=left)
    job.add_root("multiplt_corpus", "c")
    client.trigger("multiplt_corpus", {}, run_id="c")
    [mine] = client.runs["multiplt_testgen"]
    client.runs["multiplt_testgen"].append(
        {"dag_run_id": "by_hand", "dag_id": "multiplt_testgen", "conf": {},
         "queued_at": client.tick(), "state": "queued", "start_date": None})
    _mark_failed(client, "multiplt_testgen", "by_hand")
    request, failures = client.request, [1]

    def locked_once(method, path, body=None, ok=(200, 201, 204)):
        if path.startswith("/api/v2/assets/events") and failures:
            failures.pop()
            raise AirflowAPIError(method, path, 500, "database is locked")
        return request(method, path, body, ok)

    client.request = locked_once
    runs = chain_job.follow(client, job, timeout=60)
    assert not failures  # the 500 came
    assert [r["dag_run_id"] for r in runs["multiplt_testgen"]] == [mine["dag_run_id"]]
    assert mine["state"] == "success"


def test_the_heartbeat_names_a_deferred_run_when_no_run_of_the_job_works(monkeypatch):
    """The repro: someone else's testgen run works (max_active_runs=1), so Airflow defers the
    run of the job's corpus event; the job's own runs have ended. The job waited and printed
    nothing, once a minute or ever. Now each heartbeat says what it waits for."""
    clock = [0.0]
    monkeypatch.setattr(chain_job.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(chain_job.time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    client = SimulatedAirflow(paused=False, hold=["multiplt_testgen"],
                              max_active_runs={"multiplt_testgen": 1})
    since = client.clock
    client._run("multiplt_testgen", {"model": "someone/else"})  # theirs, working
    job = chain_job.ChainJob(since, "file:///d/main_job/t")
    job.add_root("multiplt_corpus", "c")
    client.trigger("multiplt_corpus", {}, run_id="c")
    beats, waits = [], []
    with pytest.raises(TimeoutError, match=r"no run yet for \[\('multiplt_testgen'"):
        chain_job.follow(client, job, timeout=150, on_heartbeat=beats.append,
                         on_waiting=lambda lines: waits.append((clock[0], lines)))
    line = ("multiplt_testgen run of multiplt_corpus_functions (from multiplt_corpus c) "
            "deferred (multiplt_testgen at max_active_runs: multiplt_testgen_1 running)")
    assert beats == []  # no run of the job works
    assert waits == [(60.0, [line]), (120.0, [line])]


def test_the_waiting_lines_name_a_run_not_created_yet_and_unreadable_events():
    since = datetime.datetime(2030, 1, 1, 12, 0, tzinfo=datetime.timezone.utc)
    job = chain_job.ChainJob(since, "file:///d/main_job/t")
    job.active = {"multiplt_publish": []}
    event = {"name": "multiplt_results", "source_dag_id": "multiplt_evaluate",
             "source_run_id": "e1"}
    stamp = since + datetime.timedelta(seconds=5)
    assert chain_job.waiting_lines(job, [("multiplt_corpus", "c")],
                                   [("multiplt_publish", event, stamp)]) == [
        f"multiplt_publish run of multiplt_results (from multiplt_evaluate e1) not created yet "
        f"(event at {stamp.astimezone():%H:%M:%S})",
        "the Asset events of multiplt_corpus c (Airflow cannot give them while a run they created "
        "has not started)"]


def test_the_main_job_prints_a_waiting_line_for_a_deferred_run(tmp_path, monkeypatch, capsys):
    """scripts/embedded_airflow.py wires follow's on_waiting: the job's heartbeat prints what it
    waits for (a deferred publish run) where no run of the job works, and no `still` line."""
    clock = itertools.count()
    monkeypatch.setattr(chain_job.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setattr(chain_job, "follow", functools.partial(chain_job.follow, heartbeat_s=10))
    client = SimulatedAirflow(paused=False, hold=["multiplt_publish"],
                              max_active_runs={"multiplt_publish": 1})
    client._run("multiplt_publish", {"dataset_repo": "me/real-datasets"})  # theirs, working
    with pytest.raises(TimeoutError):
        run_main_job(tmp_path, monkeypatch, "lua", client)
    out = capsys.readouterr().out
    waits = [line for line in out.splitlines() if " waiting: " in line]
    assert waits and all(
        "waiting: multiplt_publish run of multiplt_checkpoints, multiplt_dataset_lua, "
        "multiplt_results (from " in line and line.endswith(
            " deferred (multiplt_publish at max_active_runs: multiplt_publish_1 running)")
        for line in waits), waits
    assert "still " not in out


def _release_at_scan(client, dag_id, scan, run_ids=None):
    """Let the held runs of `dag_id` (those of `run_ids`, all by default) end (success, with
    their events) at the `scan`-th scan of the job's runs (a scan lists multiplt_corpus first);
    returns the list of scans' numbers at which a run ended so."""
    request, scans, released = client.request, [0], []

    def at_scan(method, path, body=None, ok=(200, 201, 204)):
        if method == "GET" and path.startswith("/api/v2/dags/multiplt_corpus/dagRuns"):
            scans[0] += 1
            if scans[0] == scan:
                for run in client.runs[dag_id]:
                    if run["state"] == "running" and run["dag_run_id"] in (
                            run_ids or [run["dag_run_id"]]):
                        released.append(scans[0])
                        client.release(dag_id, run["dag_run_id"])
        return request(method, path, body, ok)

    client.request = at_scan
    return released


def test_a_run_the_unreadable_events_created_that_started_is_waited_for_and_reported(
        tmp_path, monkeypatch, capsys):
    """The reviewer's repro: translate's dataset event creates a finetune run, which starts and
    works, and a publish run, marked failed before it starts (as is the publish run of the base
    evaluation's event). Translate's events stay unreadable (HTTP 500), so the finetune run was
    never found: after two scans the publish run counted as the job's, the job ended with the
    finetune run still working ("finetune: did not run"), set the Variables back under it and
    waited for nothing it triggers. Now that finetune run is the job's: the job waits until it
    ends, then for the publish run its checkpoints event creates, and reports both."""
    clock = itertools.count()  # each reading of the clock a second later: a wait ends
    monkeypatch.setattr(chain_job.time, "monotonic", lambda: float(next(clock)))
    client = SimulatedAirflow(paused=True, late=["multiplt_publish"], hold=["multiplt_finetune"])
    released = _release_at_scan(client, "multiplt_finetune", 5)
    real_run = client._run

    def publish_failed_in_the_ui(dag_id, conf, queued_at=None, run_id=None):
        got = real_run(dag_id, conf, queued_at, run_id)
        if dag_id == "multiplt_publish" and not released:
            _mark_failed(client, dag_id, got)
        return got

    client._run = publish_failed_in_the_ui
    rc = run_main_job(tmp_path, monkeypatch, "lua", client)
    out = capsys.readouterr().out
    assert released == [5]  # the job still followed its runs then
    [finetune] = client.runs["multiplt_finetune"]
    assert finetune["state"] == "success"
    failed_first, by_evaluate, by_finetune = client.runs["multiplt_publish"]
    assert failed_first["start_date"] is None and by_evaluate["start_date"] is None
    assert by_finetune["state"] == "success"
    report = out.split("runs and the stages that ended empty, were off or failed")[1]
    lines = report.splitlines()
    assert f"multiplt_finetune {finetune['dag_run_id']}: success" in lines
    assert f"multiplt_publish {by_finetune['dag_run_id']}: success" in lines
    assert "finetune: no checkpoint announced" in out  # it ran (the simulation writes none)
    assert "finetune: did not run" not in out
    # the job ended normally: it stopped nothing (the PATCHes are the UI's)
    assert [p[1] for p in client.patched] == [failed_first["dag_run_id"],
                                             by_evaluate["dag_run_id"]]
    assert "stopping the job's runs" not in out
    assert rc == 1  # the publish runs marked failed


def test_the_runs_of_unreadable_events_are_not_someone_elses(monkeypatch):
    """Where the job takes the runs its unreadable events created by their DAG and time, it
    leaves those it can tell are not of them: finetune runs triggered by hand meanwhile (with
    settings, and without), one queued before its translate run started, one the job listed before its translate run started (queued again
    since, cleared by hand, with no run_after to tell its age), the runs someone else's translate
    run's readable event created. All of them work until marked failed: one taken as the job's
    would keep `follow` waiting."""
    clock = itertools.count()  # each reading of the clock a second later: a wait ends
    monkeypatch.setattr(chain_job.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setattr(chain_job.time, "sleep", lambda s: None)
    client = SimulatedAirflow(paused=False, late=["multiplt_publish"], hold=["multiplt_finetune"])
    client.stored["multiplt_translate"] = ('{"languages": ["lua"]}', "")
    since = client.clock
    old = client._run("multiplt_finetune", None)  # started, working
    job = chain_job.ChainJob(since, "file:///d/main_job/t", paused=["multiplt_evaluate"])
    job.add_root("multiplt_translate", "t")
    job.scan(client)  # the job lists it before its translate run starts
    client.trigger("multiplt_translate", {}, run_id="t")
    mine_publish = next(r for r in client.runs["multiplt_publish"] if r["start_date"] is None)
    _mark_failed(client, "multiplt_publish", mine_publish["dag_run_id"])
    mine = client.runs["multiplt_finetune"][-1]
    by_hand = client._run("multiplt_finetune", {"base_model": "someone/else"})
    by_hand_bare = client._run("multiplt_finetune", {})  # run_type manual, no settings
    # queued before the job, not listed before (beyond the 100 latest runs the job lists)
    older = client._run("multiplt_finetune", None,
                        queued_at=(since - datetime.timedelta(hours=1)).isoformat())
    theirs = client._run("multiplt_translate", None)  # its publish run starts at the next scan
    [their_finetune] = [ref["run_id"] for event in client.events[theirs]
                        for ref in event["created_dagruns"] if ref["dag_id"] == "multiplt_finetune"]
    cleared = client._find("multiplt_finetune", old)
    cleared["queued_at"] = client.tick()  # cleared by hand: queued again
    del cleared["run_after"]
    released = _release_at_scan(client, "multiplt_finetune", 4, [mine["dag_run_id"]])
    runs = chain_job.follow(client, job, timeout=60)
    assert released == [4]
    assert [r["dag_run_id"] for r in runs["multiplt_finetune"]] == [mine["dag_run_id"]]
    assert mine["state"] == "success"
    assert mine_publish["dag_run_id"] in {r["dag_run_id"] for r in runs["multiplt_publish"]}
    assert all(client._find("multiplt_finetune", r)["state"] == "running"
               for r in (old, by_hand, by_hand_bare, older, their_finetune))
    assert job.adopted == {("multiplt_translate", "t"): [("multiplt_finetune", mine["dag_run_id"])]}
