"""A simulated Airflow REST API for the main job (scripts/embedded_airflow.py main-job) without
Airflow: the chain DAGs' paused flags, Variables, runs, task instances, task logs and Asset
events, answering the calls main_job and plugins/multiplt_airflow/chain_job.py make, as
Airflow 3's REST API answers them (an unknown Variable is HTTP 404; an event names its source
run and lists the runs it created in `created_dagruns`; a paused DAG gets no Asset-triggered
run; a Variable's JSON value comes back serialized again, its sensitive keys masked; a run an
event created that is still queued, never started, makes that event unreadable: HTTP 500, also
once that run is marked failed before it started; a run the job triggers keeps the run id it
chose; as an option, an event for a DAG at its max_active_runs stays queued until that DAG's
run has ended, and the runs of some DAGs stay queued until the scheduler starts them).

`run_main_job(...)` runs main_job on it with a results store holding the base model's row.
Used by tests/unit/multiplt_airflow/test_main_job_*.py."""

from __future__ import annotations

import argparse
import datetime
import json
import re
import urllib.parse

BASE_RUN = "file:///d/evaluate/base"
#: the Assets' ids, given in the order they first have an event (an Asset event and a queued
#: event name their Asset by id)
ASSET_IDS: dict[str, int] = {}


#: parts of a key that Airflow's secrets masker deems sensitive (its DEFAULT_SENSITIVE_FIELDS)
SENSITIVE = ("access_key", "access_token", "api_key", "apikey", "auth_header", "authorization",
             "bearer", "connection_string", "dsn", "passphrase", "passwd", "password",
             "private_key", "proxy", "proxies", "secret", "service_account", "service_key",
             "token", "keyfile_dict", "webhook_url")


def _redact(value, hide: bool = False):
    """Airflow's `redact`: under a sensitive key every string is `***` (numbers stay)."""
    if isinstance(value, dict):
        return {k: _redact(v, hide or any(s in re.sub(r"\W+", "_", k.strip().lower())
                                          for s in SENSITIVE))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, hide) for v in value]
    return "***" if hide and isinstance(value, str) else value


def answered(value: str) -> str:
    """A Variable's value as Airflow 3.3's REST API gives it (VariableResponse.redact_val): a
    JSON value parsed, its sensitive keys masked (`***`) and serialized again (json.dumps)."""
    try:
        return json.dumps(_redact(json.loads(value)))
    except ValueError:
        return value


class SimulatedAirflow:
    """Every run ends at once with its DAG's events (success), but those of `hold` (they stay
    running until marked failed) and those of `fail` ({dag_id: (task_id, map_index, log
    line)}: the run fails, that task failed with that line in its log). Each event queues one
    run of every unpaused consumer (chain_job.consumers, the DAGs' schedules), as Airflow's
    AssetManager does, and names it in its `created_dagruns` (a run has Airflow 3's `run_type`:
    asset_triggered for an event's, manual for a triggered one). `release(dag_id, run_id)` ends a
    held run so. `resume`: DAGs of which a run of
    an earlier job, queued long ago, resumes and ends (with its events) when the job triggers its
    first run. `interrupt`: (n, exception): the n-th listing of runs raises it (once), as Ctrl-C
    or a timeout would in the middle of the job's polling.

    As Airflow's scheduler does, but only for the DAGs a test names: `late`: DAGs whose runs
    stay queued (no start_date) until the next listing of their runs finds the DAG unpaused
    (the scheduler starts them then, but not beyond the DAG's max_active_runs; a paused DAG's
    queued run never starts); while a run an event created is queued, the events of its source
    run answer HTTP 500, as Airflow 3.3's response model (which requires the created run's
    start_date) does, also once such a run is marked failed without ever starting (a PATCH
    of its state: no scheduler starts it then). `max_active_runs`: {dag_id: n}: an event for
    such a DAG while n runs of it are queued or running creates no run: it stays queued (a queued
    event, `/assets/queuedEvents`) until a listing of the DAG's runs finds it unpaused and
    below n, when one run is created that takes every event queued for it (each names it in
    its `created_dagruns`). `lost_patch`: DAGs whose held run, marked failed, succeeds all the
    same (with its events): it ended as the mark came, and the scheduler's write of its success
    landed last, as it can on SQLite (no row locks)."""

    def __init__(self, paused: bool, variables: dict[str, tuple[str, str]] | None = None,
                 hold=(), fail=None, resume=(), interrupt=None, late=(), max_active_runs=None,
                 lost_patch=()):
        from multiplt_airflow import chain_job

        self.chain = chain_job
        self.paused = {dag_id: paused for dag_id in chain_job.CHAIN}
        # key -> (value as stored, description)
        self.stored: dict[str, tuple[str, str]] = dict(variables or {})
        self.job_set: dict[str, dict] = {}  # what the job set, parsed
        self.runs: dict[str, list[dict]] = {dag_id: [] for dag_id in chain_job.CHAIN}
        self.events: dict[str, list[dict]] = {}
        self.tasks: dict[str, list[dict]] = {}
        self.logs: dict[tuple[str, str, int], list[dict]] = {}
        self.hold, self.fail, self.resume = set(hold), dict(fail or {}), list(resume)
        self.interrupt = interrupt
        self.listings = 0
        self.patched: list[tuple[str, str, dict]] = []
        self.cleared_queues: list[str] = []
        # dag_id -> [{"dag_id", "asset_id", "created_at"}]: Asset events queued for a DAG (a
        # test puts them there; Airflow's answer names no event nor run they came from)
        self.queued: dict[str, list[dict]] = {}
        self.clock = datetime.datetime.now(datetime.timezone.utc)
        self.late = set(late)
        self.max_active_runs = dict(max_active_runs or {})
        self.deferred: dict[str, list[dict]] = {}  # dag_id -> the events queued for it
        self.lost_patch = set(lost_patch)

    @property
    def variables(self) -> dict[str, dict]:
        return {key: json.loads(value) for key, (value, _) in self.stored.items()}

    def tick(self) -> str:
        """A second after the last stamp, and never before now: the job counts as its own only
        runs queued since it started (a slow start, e.g. a first import, once let its runs'
        stamps fall before the job's)."""
        self.clock = max(self.clock + datetime.timedelta(seconds=1),
                         datetime.datetime.now(datetime.timezone.utc))
        return self.clock.isoformat()

    # the AirflowClient methods main_job calls
    def wait_for_dag(self, dag_id, timeout=180):
        return {"dag_id": dag_id, "is_paused": self.paused[dag_id]}

    def set_variable(self, key, value, description=""):
        self.stored[key] = (value, description)
        if description == "set by the main job":  # not a Variable set back
            self.job_set[key] = json.loads(value)

    def set_paused(self, dag_id, paused):
        self.paused[dag_id] = paused

    def trigger(self, dag_id, conf=None, unpause=True, run_id=None):
        if unpause:
            self.paused[dag_id] = False
        while self.resume:  # an earlier job's run, resumed when Airflow started
            self._run(self.resume.pop(0), None, queued_at=(
                self.clock - datetime.timedelta(hours=1)).isoformat())
        return self._run(dag_id, conf, run_id=run_id)

    def task_instances(self, dag_id, run_id):
        return list(self.tasks.get(run_id, []))

    def task_log_content(self, dag_id, run_id, task_id, try_number=1, map_index=-1):
        return self.logs.get((run_id, task_id, map_index), [])

    def request(self, method, path, body=None, ok=(200, 201, 204)):
        from multiplt_airflow.rest import AirflowAPIError

        parts = urllib.parse.urlsplit(path)
        segments = [urllib.parse.unquote(s) for s in parts.path.split("/")]
        if parts.path.startswith("/api/v2/variables/"):
            key = segments[4]
            if method == "GET":
                if key not in self.stored:
                    raise AirflowAPIError(method, path, 404, "not found")
                value, description = self.stored[key]
                return {"key": key, "value": answered(value), "description": description}
            if method == "DELETE":
                if key not in self.stored and 404 not in ok:
                    raise AirflowAPIError(method, path, 404, "not found")
                self.stored.pop(key, None)
                return None
        if parts.path == "/api/v2/assets/events":
            run_id = urllib.parse.parse_qs(parts.query)["source_run_id"][0]
            events = self.events.get(run_id, [])
            if any(self._find(ref["dag_id"], ref["run_id"])["start_date"] is None
                   for event in events for ref in event["created_dagruns"]):
                raise AirflowAPIError(method, path, 500, "Internal Server Error")
            return {"asset_events": events}
        if parts.path.endswith("/assets/queuedEvents") and method == "DELETE":
            self.cleared_queues.append(segments[4])
            self.queued.pop(segments[4], None)
            return None
        if parts.path.endswith("/assets/queuedEvents") and method == "GET":
            found = self.queued.get(segments[4], [])
            return {"queued_events": [dict(q) for q in found], "total_entries": len(found)}
        dag_id = segments[4]
        query = urllib.parse.parse_qs(parts.query)
        if method == "PATCH" and len(segments) == 7:  # a run's state
            run = self._find(dag_id, segments[6])
            self.patched.append((dag_id, segments[6], body))
            if dag_id in self.lost_patch and body["state"] == "failed":
                self.release(dag_id, run["dag_run_id"])  # its success is written last
            else:
                run["state"] = body["state"]
            return dict(run, state=body["state"])
        if method == "GET" and parts.path.endswith("/dagRuns") and "state" in query:
            # a listing by state (the job's check before it starts): no scheduler turn, not
            # counted in `listings`
            return {"dag_runs": [dict(r) for r in self.runs[dag_id]
                                 if r["state"] in query["state"]]}
        if method == "GET" and parts.path.endswith("/dagRuns"):
            self.listings += 1
            if self.interrupt and self.listings >= self.interrupt[0]:
                exc, self.interrupt = self.interrupt[1], None
                raise exc
            self._schedule(dag_id)
            return {"dag_runs": [dict(r) for r in self.runs[dag_id]]}
        raise AssertionError(f"unexpected {method} {path}")

    # what the scheduler and the DAGs would do
    def _emits(self, dag_id: str, conf: dict | None) -> tuple[str, list[dict]]:
        if dag_id in self.hold:
            return "running", []
        if dag_id in self.fail:
            return "failed", []
        if dag_id == "multiplt_corpus":
            return "success", [{"name": "multiplt_corpus_functions"}]
        if dag_id == "multiplt_testgen":  # a real teacher: testgen kept rows
            return "success", [{"name": "multiplt_testgen_tests", "extra": {"rows": 4}}]
        if dag_id == "multiplt_translate":
            langs = self.variables["multiplt_translate"]["languages"]
            if not langs:  # the Param's minItems refuses the Variable: plan fails
                return "failed", []
            return "success", [{"name": f"multiplt_dataset_{lang}"} for lang in langs]
        if dag_id == "multiplt_finetune":
            return "success", [{"name": "multiplt_checkpoints", "extra": {"outputs": []}}]
        if dag_id == "multiplt_evaluate":
            return "success", [{"name": "multiplt_results", "extra": {"runs": [{"run": BASE_RUN}]}}]
        return "success", []

    def _find(self, dag_id: str, run_id: str) -> dict:
        return next(r for r in self.runs[dag_id] if r["dag_run_id"] == run_id)

    def _at_max(self, dag_id: str) -> bool:
        return dag_id in self.max_active_runs and sum(
            r["state"] in ("queued", "running") for r in self.runs[dag_id]
        ) >= self.max_active_runs[dag_id]

    def _schedule(self, dag_id: str) -> None:
        """The scheduler's turn on an unpaused DAG: start its queued runs (`late`) while fewer
        than its max_active_runs run, create the run of the events queued for it once it is
        below its max_active_runs."""
        if self.paused[dag_id]:
            return
        for run in self.runs[dag_id]:
            running = sum(r["state"] == "running" for r in self.runs[dag_id])
            if (run["state"] == "queued" and run["start_date"] is None
                    and running < self.max_active_runs.get(dag_id, running + 1)):
                self._start(run)
        if self.deferred.get(dag_id) and not self._at_max(dag_id):
            events = self.deferred.pop(dag_id)
            self.queued.pop(dag_id, None)
            created = self._run(dag_id, None)
            for event in events:
                event["created_dagruns"].append({"dag_id": dag_id, "run_id": created})

    def _run(self, dag_id: str, conf: dict | None, queued_at: str | None = None,
             run_id: str | None = None) -> str:
        run_id = run_id or f"{dag_id}_{len(self.runs[dag_id]) + 1}"
        queued_at = queued_at or self.tick()
        self.runs[dag_id].append({"dag_run_id": run_id, "dag_id": dag_id, "conf": conf or {},
                                  "queued_at": queued_at, "run_after": queued_at,
                                  "run_type": "asset_triggered" if conf is None else "manual",
                                  "state": "queued", "start_date": None})
        if dag_id not in self.late:
            self._start(self.runs[dag_id][-1])
        return run_id

    def release(self, dag_id: str, run_id: str) -> None:
        """A run of a `hold` DAG ends as the runs of the others do (success, with its events)."""
        run = self._find(dag_id, run_id)
        assert run["state"] == "running"
        self.hold.discard(dag_id)
        try:
            self._start(run, run["start_date"])
        finally:
            self.hold.add(dag_id)

    def _start(self, run: dict, started: str | None = None) -> None:
        dag_id, run_id, conf = run["dag_id"], run["dag_run_id"], run["conf"] or None
        run["start_date"] = started or self.tick()
        state, events = self._emits(dag_id, conf)
        run["state"] = state
        if dag_id in self.fail:
            task_id, map_index, line = self.fail[dag_id]
            self.tasks[run_id] = [
                {"task_id": "plan", "map_index": -1, "state": "success", "try_number": 1},
                {"task_id": task_id, "map_index": map_index, "state": "failed", "try_number": 2},
                {"task_id": "record", "map_index": -1, "state": "upstream_failed",
                 "try_number": 0}]
            self.logs[(run_id, task_id, map_index)] = [
                {"level": "info", "event": "Running: multiplt ..."},
                {"level": "info", "event": f"[stderr] {line}"},
                {"level": "error", "event": "Task failed with exception",
                 "error_detail": [{"exc_type": "StageCommandFailed",
                                   "exc_value": "`multiplt ...` exited with code 3"}]}]
        elif state == "running":
            self.tasks[run_id] = [{"task_id": "execute", "map_index": 0, "state": "running",
                                   "try_number": 1}]
        self.events[run_id] = [
            {**e, "asset_id": ASSET_IDS.setdefault(e["name"], len(ASSET_IDS) + 1),
             "source_dag_id": dag_id, "source_run_id": run_id, "timestamp": self.tick(),
             "created_dagruns": []} for e in events]
        for event in self.events[run_id]:
            for consumer in self.chain.consumers(event["name"]):
                if self.paused[consumer]:  # Airflow queues no event for a paused DAG
                    continue
                if self._at_max(consumer):  # deferred: queued until a run of it has ended
                    self.deferred.setdefault(consumer, []).append(event)
                    rows = self.queued.setdefault(consumer, [])
                    if all(q["asset_id"] != event["asset_id"] for q in rows):
                        rows.append({"dag_id": consumer, "asset_id": event["asset_id"],
                                     "created_at": event["timestamp"]})
                    continue
                created = self._run(consumer, None)
                event["created_dagruns"].append({"dag_id": consumer, "run_id": created})


def results_store(path) -> str:
    import polars as pl

    from multiplt.results.schema import COLUMNS, polars_schema

    row = {**{c: None for c in COLUMNS}, "run_id": "base@x", "dataset": "base", "run_uri": BASE_RUN,
           "model": "/m", "experiment": "main_job", "lang": "py", "epoch": 0, "k": 1,
           "estimate": 0.5, "num_problems": 1, "created_at": "2020-01-01T00:00:00+00:00"}
    pl.DataFrame([row], schema=polars_schema()).write_parquet(path)
    return str(path)


def run_main_job(tmp_path, monkeypatch, languages: str, client: SimulatedAirflow,
                 launcher=None, timeout: float = 30):
    """main_job of scripts/embedded_airflow.py on `client`, no waiting between polls (so a job
    that waits for a run held for ever polls for its whole `timeout`, --timeout's seconds)."""
    from multiplt_airflow import chain_job
    from tests.support.airflow import load_launcher

    launcher = launcher or load_launcher()
    monkeypatch.setattr(chain_job.time, "sleep", lambda s: None)
    monkeypatch.setenv("AIRFLOW__MULTIPLT__DATA_URI", (tmp_path / "data").as_uri())
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RESULTS_STORE", results_store(tmp_path / "results.parquet"))
    airflow = argparse.Namespace(client=client, base_url="http://127.0.0.1:1",
                                 data_dir=str(tmp_path / "data"),
                                 config_path=str(tmp_path / "airflow.cfg"))
    args = argparse.Namespace(model="/m", languages=languages, source="stdlib", corpus_limit=None,
                              n=1, max_new_tokens=8, limit=1, timeout=timeout, publish_repo=None,
                              teacher_generation=None)
    return launcher.main_job(airflow, args)
