"""The main job's chain follower and report without Airflow: which DAG consumes which Asset (the
DAGs' schedules as snapshotted), the Variables it sets, waiting for the runs an event implies,
and the funnel lines read from the stages' files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from multiplt_airflow import chain_job, chain_report
from multiplt_airflow.rest import AirflowAPIError

REPO = Path(__file__).resolve().parents[3]


def test_consumers_are_the_dags_scheduled_on_each_asset():
    snapshot = json.loads((REPO / "tests" / "dags" / "snapshot.json").read_text())
    scheduled: dict[str, set[str]] = {}
    for dag_id in chain_job.CHAIN:
        for asset in snapshot[dag_id]["schedule_assets"]:
            scheduled.setdefault(asset, set()).add(dag_id)
    assert scheduled  # the chain DAGs are scheduled on Assets
    for asset, dags in scheduled.items():
        assert set(chain_job.consumers(asset)) == dags, asset
    assert chain_job.consumers("multiplt_new_base_model") == []
    # the DAGs the events of each chain DAG's runs start: the consumers of its tasks' outlets
    for dag_id in chain_job.CHAIN:
        outlets = {o["name"] for t in snapshot[dag_id]["tasks"].values()
                   for o in t.get("outlets", [])}
        assert set(chain_job.DOWNSTREAM[dag_id]) == {c for name in outlets
                                                     for c in chain_job.consumers(name)}, dag_id


def test_chain_settings_target_languages_and_no_base_evaluation_in_finetune():
    got = chain_job.chain_settings(model="/m", languages=["py", "lua", "rkt"],
                                   targets=["lua", "rkt", "r"], root="file:///d/main_job/t",
                                   publish_dir="/d/pub", n=2, max_new_tokens=128, limit=None)
    assert got["multiplt_translate"]["languages"] == ["lua", "rkt"]
    assert got["multiplt_translate"]["out"] == "file:///d/main_job/t/translate"
    assert got["multiplt_testgen"]["out"] == "file:///d/main_job/t/testgen"
    assert got["multiplt_testgen"]["model"] == "/m" and got["multiplt_testgen"]["n"] == 2
    # inputs queued before the job are named in its runs' logs, not run with its settings
    assert got["multiplt_testgen"]["other_inputs"] == got["multiplt_translate"]["other_inputs"] \
        == "log"
    finetune = got["multiplt_finetune"]
    assert finetune["base_model"] == "/m" and finetune["epochs"] == 1
    assert finetune["evaluate_base"] is False and "limit" not in finetune
    assert got["multiplt_publish"]["dry_run"] == "/d/pub"
    # each job trains into its own folder: `multiplt train` refuses another job's dataset in an
    # existing output, and the training output's name does not depend on the job
    assert finetune["training_root"] == "file:///d/main_job/t/training"


def test_the_score_table_is_this_jobs_runs_whatever_their_rows_first_recording(tmp_path, capsys):
    """A second job's evaluation of the same base model reuses the first job's folder and the
    store keeps the row's first created_at: the table is chosen by this job's run folders."""
    import polars as pl

    from multiplt.results.schema import COLUMNS, polars_schema

    def row(run, lang, estimate):
        base = {c: None for c in COLUMNS}
        return {**base, "run_id": run + "@x", "dataset": run, "run_uri": f"file:///d/evaluate/{run}",
                "model": "m", "experiment": "main_job", "lang": lang, "epoch": 0, "k": 1,
                "estimate": estimate, "num_problems": 164, "created_at": "2020-01-01T00:00:00+00:00"}

    store = tmp_path / "results.parquet"
    pl.DataFrame([row("a", "lua", 0.25), row("b", "r", 0.5)], schema=polars_schema()).write_parquet(store)
    events = [{"name": "multiplt_results", "extra": {"runs": [
        {"lang": "lua", "model": "m", "revision": None, "run": "file:///d/evaluate/a"}]}},
        {"name": "multiplt_checkpoints", "extra": {"outputs": []}}]
    runs = chain_report.result_runs(events)
    assert runs == {"file:///d/evaluate/a"}
    assert chain_report.print_scores(str(store), runs, "main_job") is True
    out = capsys.readouterr().out
    assert "lua" in out and "0.2500" in out and "0.5000" not in out
    assert chain_report.print_scores(str(store), set(), "main_job") is False


class FakeClient:
    """Runs per DAG, each (run id, queued at, the states it goes through one per poll, the poll
    it appears at); events per run, each naming in `creates` the runs it creates (listed in its
    `created_dagruns` once they appear)."""

    def __init__(self, runs, events, failing_event_reads=0):
        self.runs, self.events, self.polls = runs, events, 0
        self.failing_event_reads = failing_event_reads

    def _visible(self, dag_id):
        out = []
        for run_id, queued_at, states, first_poll in self.runs.get(dag_id, []):
            if self.polls >= first_poll:
                state = states[min(self.polls - first_poll, len(states) - 1)]
                out.append({"dag_run_id": run_id, "queued_at": queued_at, "state": state})
        return out

    def request(self, method, path, body=None):
        if path.startswith("/api/v2/assets/events"):
            if self.failing_event_reads:  # as Airflow does while an event's run is queued
                self.failing_event_reads -= 1
                raise AirflowAPIError(method, path, 500, "Internal Server Error")
            run_id = path.split("source_run_id=")[1].split("&")[0]
            out = []
            for event in self.events.get(run_id, []):
                created = [{"dag_id": d, "run_id": r} for d, r in event.get("creates", [])
                           if any(v["dag_run_id"] == r for v in self._visible(d))]
                out.append({**event, "created_dagruns": created})
            return {"asset_events": out}
        dag_id = path.split("/")[4]
        if dag_id == "multiplt_corpus":
            self.polls += 1
        return {"dag_runs": self._visible(dag_id)}


def _job(since, *roots, root="file:///d/main_job/t", paused=()):
    job = chain_job.ChainJob(since, root, paused)
    for dag_id, run_id in roots:
        job.add_root(dag_id, run_id)
    return job


def test_follow_waits_for_the_run_an_event_starts(monkeypatch):
    import datetime

    monkeypatch.setattr(chain_job.time, "sleep", lambda s: None)
    now = datetime.datetime.now(datetime.timezone.utc)
    at = lambda s: (now + datetime.timedelta(seconds=s)).isoformat()  # noqa: E731
    client = FakeClient(
        runs={"multiplt_corpus": [("c1", at(1), ["running", "success"], 1)],
              # the testgen run appears two polls after corpus succeeded
              "multiplt_testgen": [("t1", at(3), ["running", "success"], 4)]},
        events={"c1": [{"name": "multiplt_corpus_functions", "timestamp": at(2),
                        "creates": [("multiplt_testgen", "t1")]}]})
    seen = []
    runs = chain_job.follow(client, _job(now, ("multiplt_corpus", "c1")), timeout=60,
                            on_change=lambda d, r: seen.append((d, r["state"])))
    assert [r["dag_run_id"] for r in runs["multiplt_testgen"]] == ["t1"]
    assert seen == [("multiplt_corpus", "running"), ("multiplt_corpus", "success"),
                    ("multiplt_testgen", "running"), ("multiplt_testgen", "success")]

    # the events endpoint failing for a while (HTTP 500) is asked again, not fatal
    client = FakeClient(
        runs={"multiplt_corpus": [("c1", at(1), ["success"], 1)],
              "multiplt_testgen": [("t1", at(3), ["running", "success"], 2)]},
        events={"c1": [{"name": "multiplt_corpus_functions", "timestamp": at(2),
                        "creates": [("multiplt_testgen", "t1")]}]},
        failing_event_reads=3)
    runs = chain_job.follow(client, _job(now, ("multiplt_corpus", "c1")), timeout=60)
    assert [r["dag_run_id"] for r in runs["multiplt_testgen"]] == ["t1"]
    assert client.failing_event_reads == 0

    # an event whose consumer never runs (a paused DAG) is an error, not an endless wait
    client = FakeClient(runs={"multiplt_corpus": [("c1", at(-300), ["success"], 1)]},
                        events={"c1": [{"name": "multiplt_corpus_functions", "timestamp": at(-299)}]})
    with pytest.raises(TimeoutError, match="multiplt_testgen has no run after it"):
        chain_job.follow(client, _job(now - datetime.timedelta(seconds=400),
                                      ("multiplt_corpus", "c1")), timeout=60)


def test_follow_waits_for_a_run_airflow_defers_while_its_consumer_works(monkeypatch):
    """The review's repro: a run of an earlier job (queued before this one started) works on
    multiplt_testgen, whose max_active_runs is 1, so Airflow defers the run of corpus's event
    until it ends. The job counted 180 s from the event, said "multiplt_testgen has no run
    after it (is multiplt_testgen paused?)" and failed its runs. Now it waits while the
    consumer has a run queued or running, whoever's."""
    import datetime

    monkeypatch.setattr(chain_job.time, "sleep", lambda s: None)
    now = datetime.datetime.now(datetime.timezone.utc)
    at = lambda s: (now + datetime.timedelta(seconds=s)).isoformat()  # noqa: E731
    client = FakeClient(
        runs={"multiplt_corpus": [("c1", at(-590), ["success"], 1)],
              "multiplt_testgen": [("old", at(-3600), ["running"] * 3 + ["success"], 1),
                                   ("t1", at(-1), ["running", "success"], 4)]},
        events={"c1": [{"name": "multiplt_corpus_functions", "timestamp": at(-300),
                        "creates": [("multiplt_testgen", "t1")]}]})
    job = _job(now - datetime.timedelta(seconds=600), ("multiplt_corpus", "c1"))
    runs = chain_job.follow(client, job, timeout=60)
    assert [r["dag_run_id"] for r in runs["multiplt_testgen"]] == ["t1"]
    assert client.polls == 5


def test_follow_asks_again_after_a_transient_error_a_few_times(monkeypatch):
    """A poll failing with HTTP 5xx or a connection error is made again after a growing pause,
    POLL_RETRIES times in a row at most; another error ends the wait at once."""
    import datetime

    pauses = []
    monkeypatch.setattr(chain_job.time, "sleep", pauses.append)
    now = datetime.datetime.now(datetime.timezone.utc)

    class Down:
        calls = 0

        def __init__(self, error):
            self.error = error

        def request(self, method, path, body=None):
            Down.calls += 1
            raise self.error

    with pytest.raises(ConnectionRefusedError):
        chain_job.follow(Down(ConnectionRefusedError(111, "Connection refused")),
                         _job(now, ("multiplt_corpus", "c1")), timeout=3600)
    assert Down.calls == chain_job.POLL_RETRIES + 1 and pauses == [2, 4, 6, 8, 10]
    Down.calls = 0
    with pytest.raises(AirflowAPIError, match="HTTP 403"):
        chain_job.follow(Down(AirflowAPIError("GET", "/api/v2/dags", 403, "forbidden")),
                         _job(now, ("multiplt_corpus", "c1")), timeout=3600)
    assert Down.calls == 1


def test_follow_reports_only_the_runs_of_its_job(monkeypatch):
    """An earlier job's testgen run that resumed when Airflow started (queued before this job)
    announces tests: the translate run its event creates, and that run's own successors, are not
    this job's (no wait for them, not in its report), though queued after it started; the
    evaluation multiplt_finetune triggers for this job's checkpoint is (its model lies under
    the job's folder), and a hand-started one beside it is not."""
    import datetime

    monkeypatch.setattr(chain_job.time, "sleep", lambda s: None)
    now = datetime.datetime.now(datetime.timezone.utc)
    at = lambda s: (now + datetime.timedelta(seconds=s)).isoformat()  # noqa: E731
    root = "file:///d/main_job/t"

    class Client(FakeClient):
        def _visible(self, dag_id):
            runs = super()._visible(dag_id)
            if dag_id == "multiplt_evaluate":
                confs = {"e1": {"model": "/m"}, "e2": {"model": f"{root}/training/lua"},
                         "e3": {"model": "/other"}}
                runs = [{**r, "conf": confs[r["dag_run_id"]]} for r in runs]
            return runs

    client = Client(
        runs={"multiplt_corpus": [("c1", at(1), ["success"], 1)],
              "multiplt_testgen": [("old", at(-3600), ["success"], 1),
                                   ("t1", at(3), ["success"], 1)],
              "multiplt_translate": [("foreign", at(2), ["running", "running", "success"], 1),
                                     ("tr1", at(5), ["success"], 1)],
              "multiplt_finetune": [("f1", at(7), ["success"], 1),
                                    ("f-foreign", at(6), ["running"], 1)],
              "multiplt_evaluate": [("e1", at(1), ["success"], 1), ("e2", at(8), ["success"], 1),
                                    ("e3", at(9), ["running"], 1)]},
        events={"c1": [{"name": "multiplt_corpus_functions", "timestamp": at(2),
                        "creates": [("multiplt_testgen", "t1")]}],
                "old": [{"name": "multiplt_testgen_tests", "timestamp": at(1),
                         "creates": [("multiplt_translate", "foreign")]}],
                "foreign": [{"name": "multiplt_dataset_lua", "timestamp": at(5),
                             "creates": [("multiplt_finetune", "f-foreign")]}],
                "t1": [{"name": "multiplt_testgen_tests", "timestamp": at(4),
                        "creates": [("multiplt_translate", "tr1")]}],
                "tr1": [{"name": "multiplt_dataset_lua", "timestamp": at(6),
                         "creates": [("multiplt_finetune", "f1"),
                                     ("multiplt_publish", "p1")]}]})
    client.runs["multiplt_publish"] = [("p1", at(7), ["success"], 1)]
    runs = chain_job.follow(client, _job(now, ("multiplt_corpus", "c1"),
                                         ("multiplt_evaluate", "e1"), root=root), timeout=5)
    assert {dag: [r["dag_run_id"] for r in rs] for dag, rs in runs.items()} == {
        "multiplt_corpus": ["c1"], "multiplt_testgen": ["t1"], "multiplt_translate": ["tr1"],
        "multiplt_finetune": ["f1"], "multiplt_evaluate": ["e1", "e2"],
        "multiplt_publish": ["p1"]}


def test_follow_shows_the_working_tasks_at_most_once_a_minute(monkeypatch):
    """A stage may work for many minutes without a change of state: a heartbeat names the runs
    still working, at most once per heartbeat_s (here on a simulated clock: 2 s a poll)."""
    import datetime

    clock = [0.0]
    monkeypatch.setattr(chain_job.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(chain_job.time, "sleep", lambda s: clock.__setitem__(0, clock[0] + s))
    now = datetime.datetime.now(datetime.timezone.utc)
    queued = (now + datetime.timedelta(seconds=1)).isoformat()
    # 100 polls of 2 s running (200 s), then success
    client = FakeClient(runs={"multiplt_evaluate": [("e1", queued, ["running"] * 100 + ["success"], 0)]},
                        events={})
    beats = []
    chain_job.follow(client, _job(now, ("multiplt_evaluate", "e1")), timeout=3600,
                     on_heartbeat=lambda busy: beats.append((clock[0], [r["dag_run_id"] for r in busy])))
    # evaluate's runs are listed once per poll, but the poll counter counts corpus listings
    assert [b[1] for b in beats] == [["e1"]] * 3
    assert [b[0] for b in beats] == [60.0, 120.0, 180.0]

    class Tasks:
        def task_instances(self, dag_id, run_id):
            return [{"task_id": "execute", "map_index": 1, "state": "running"},
                    {"task_id": "execute", "map_index": 0, "state": "success"},
                    {"task_id": "score", "map_index": -1, "state": "scheduled"},
                    {"task_id": "build", "map_index": -1, "state": "running"},
                    {"task_id": "generate", "map_index": 2, "state": "up_for_retry"}]

    assert chain_job.working_tasks(Tasks(), "multiplt_evaluate", "e1") == [
        "build", "execute[1]", "generate[2] (up_for_retry)", "score (scheduled)"]


def test_report_lines_from_the_stage_files(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "funnel.json").write_text(json.dumps(
        {"steps": [{"name": "extracted", "in": 20, "out": 20}, {"name": "docstring", "in": 20, "out": 17}]}))
    assert chain_report.steps_lines("corpus", str(tmp_path / "corpus"))[1:] == [
        "  extracted                     20 ->      20", "  docstring                     20 ->      17"]
    assert chain_report.steps_lines("testgen", str(tmp_path / "nothing"))[0].startswith(
        "testgen: did not run")
    (tmp_path / "translate").mkdir()
    (tmp_path / "translate" / "funnel.json").write_text(json.dumps(
        {"lua": {"functions_in": 3, "prompts_built": 2, "translations_sampled": 4, "passed": 1,
                 "after_todo": 1, "after_exact_dedup": 1, "after_rouge_l": 1}}))
    assert chain_report.translate_lines(str(tmp_path / "translate"))[1] == (
        "  lua: functions_in 3 -> prompts_built 2 -> translations_sampled 4 -> passed 1 -> "
        "after_todo 1 -> after_exact_dedup 1 -> after_rouge_l 1")
    assert chain_report.finetune_lines([], False) == ["finetune: did not run (no dataset was announced)"]
    (tmp_path / "pub" / "translate").mkdir(parents=True)
    (tmp_path / "pub" / "translate" / "README.md").write_text("card")
    assert chain_report.publish_lines(str(tmp_path / "pub"))[1:] == ["  translate/README.md"]


def test_a_failed_task_is_reported_with_the_last_error_line_of_its_log():
    """A failed run names its failed tasks with the stage command's last `multiplt ...: error:`
    line (the stage operator logs its stderr as `[stderr] ...`), else the exception of the log's
    last error line; a task with no try (failed when its run was stopped) says it has none."""

    class Client:
        logs = {
            ("execute", 0): [
                {"level": "info", "event": "[stderr] multiplt execute: error: first try"},
                {"level": "info", "event": "[stderr] multiplt execute: error: julia (jl) cannot "
                                           "run: julia not installed"},
                {"level": "error", "event": "Task failed with exception",
                 "error_detail": [{"exc_type": "StageCommandFailed", "exc_value": "exit 3\n..."}]}],
            ("plan", -1): [
                {"level": "info", "event": "Filling up the DagBag"},
                {"level": "error", "event": "Task failed with exception",
                 "error_detail": [{"exc_type": "AirflowFailException",
                                   "exc_value": "n: 0 is less than the minimum of 1\nmore"}]}],
        }

        def task_instances(self, dag_id, run_id):
            return [{"task_id": "plan", "map_index": -1, "state": "failed", "try_number": 1},
                    {"task_id": "execute", "map_index": 0, "state": "failed", "try_number": 2},
                    {"task_id": "execute", "map_index": 1, "state": "success", "try_number": 1},
                    {"task_id": "score", "map_index": -1, "state": "upstream_failed",
                     "try_number": 0},
                    {"task_id": "wait", "map_index": -1, "state": "failed", "try_number": 0}]

        def task_log_content(self, dag_id, run_id, task_id, try_number, map_index):
            return self.logs[(task_id, map_index)]

    assert chain_job.failure_reasons(Client(), "multiplt_evaluate", "r1") == [
        ("execute[0]", "multiplt execute: error: julia (jl) cannot run: julia not installed"),
        ("plan", "AirflowFailException: n: 0 is less than the minimum of 1"),
        ("wait", "no error in its log")]


def test_the_no_target_hint_names_only_the_installed_targets():
    targets = ["jl", "lua", "rkt"]
    assert chain_job.no_target_reason(["py"], targets).endswith(
        "the translation targets are jl, lua, rkt (add one to --languages)")
    assert chain_job.no_target_reason(["py"], targets, ["lua", "py", "rkt"]).endswith(
        "the translation targets are lua, rkt (add one to --languages)")
    assert "no translation target (jl, lua, rkt) has its runtime installed" in (
        chain_job.no_target_reason(["py"], targets, ["py"]))
