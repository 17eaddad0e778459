"""The main job's chain on a running deployment (scripts/embedded_airflow.py main-job).

Sets the chain DAGs' Variables (the settings of their Asset-triggered runs; `save_variables`
first keeps what they were, `restore_variables` sets that back when the job ends), unpauses
them, triggers `multiplt_corpus`, then follows the chain through the REST API (`follow`): every
finished run of the job has Asset events, each naming the runs it created (`created_dagruns`),
and the job waits until every unpaused consumer of each event has such a run and every run of
the job has ended. The job's runs (`ChainJob`) are those it triggered, the runs their events
created, and so on, plus the evaluations a run of it triggered for its own checkpoints: a run
of an earlier job (one that resumed when Airflow restarted, or that such a run's event started)
or one started by hand is not in its report. With no translation target among the job's
languages (`--languages py`), `multiplt_translate` and `multiplt_finetune` are left paused
(`paused_dags`): the chain stops after testgen and nothing waits for them. A job that does not
end normally (interrupted, timed out) stops its runs (`stop_runs`, only the job's own): none of
them resumes behind a later job when Airflow starts again. Standard library only (runs outside
Airflow).
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import time
import urllib.parse

from multiplt_airflow.rest import TERMINAL_RUN_STATES as TERMINAL

CHAIN = ["multiplt_corpus", "multiplt_testgen", "multiplt_translate", "multiplt_finetune",
         "multiplt_evaluate", "multiplt_publish"]


def consumers(asset_name: str) -> list[str]:
    """The chain DAGs scheduled on an Asset (dags/multiplt_*.py `schedule=`)."""
    if asset_name == "multiplt_corpus_functions":
        return ["multiplt_testgen"]
    if asset_name == "multiplt_testgen_tests":
        return ["multiplt_translate"]
    if asset_name.startswith("multiplt_dataset_"):
        return ["multiplt_finetune", "multiplt_publish"]
    if asset_name in ("multiplt_checkpoints", "multiplt_results"):
        return ["multiplt_publish"]
    return []


# the DAGs that need a translation target: translate's Param refuses an empty `languages`, and
# finetune runs only on translate's datasets
NEED_TARGETS = ("multiplt_translate", "multiplt_finetune")


def translation_languages(languages: list[str], targets: list[str]) -> list[str]:
    """The job's languages that multiplt_translate translates into (py is evaluated, never a
    translation target)."""
    return [lang for lang in languages if lang in targets]


def paused_dags(languages: list[str], targets: list[str]) -> list[str]:
    """The chain DAGs (after multiplt_corpus) this job leaves paused: translate and finetune when
    none of `languages` is a translation target. A paused DAG gets no Asset-triggered run (Airflow
    queues none for it, even once unpaused later), so the chain stops after testgen."""
    return [] if translation_languages(languages, targets) else list(NEED_TARGETS)


def no_target_reason(languages: list[str], targets: list[str],
                     installed: list[str] | None = None) -> str:
    """Why translation and fine-tuning do not run in a job of `languages`. `installed`: the
    languages whose runtime this machine has, where the stages run on it; the hint then names
    only the targets among them (another one would fail in its execute step)."""
    head = f"no translation target among the chosen languages ({', '.join(languages)}); "
    usable = targets if installed is None else [t for t in targets if t in installed]
    if not usable:
        return (head + f"no translation target ({', '.join(targets)}) has its runtime installed "
                "on this machine (scripts/setup.sh lists the packages)")
    return head + f"the translation targets are {', '.join(usable)} (add one to --languages)"


def stage_folders(root: str) -> dict[str, str]:
    """Where the main job's corpus, testgen, translate and training outputs go (a publish dry run
    writes into a local folder of its own: `chain_settings`' publish_dir). Per job: a second job
    trains on its own translations, which `multiplt train` refuses to add to an earlier output."""
    return {stage: f"{root.rstrip('/')}/{stage}" for stage in ("corpus", "testgen", "translate",
                                                               "training")}


def chain_settings(*, model: str, languages: list[str], targets: list[str], root: str,
                   publish_dir: str, n: int, max_new_tokens: int, limit: int | None,
                   teacher: dict | None = None, publish_repo: str | None = None) -> dict:
    """The Variables of the chain DAGs for this job (Asset-triggered runs read them).

    `teacher` ({backend, model, api_base}, job_models.teacher_generation) writes the tests and
    translations; None = `model` itself with the transformers backend. `model` is the base model
    fine-tuned and evaluated. With `publish_repo` the datasets go to that Hub dataset repo and
    the checkpoints to the model repo of the same name; without it, datasets are written as a
    dry run into `publish_dir`. testgen and translate start no run for an input queued before the
    job (`other_inputs` log: their runs name it in the log). Fine-tuning evaluates its
    checkpoints only: the job evaluates the base model itself, beside the chain. No Variable for
    the DAGs of `paused_dags` (with no translation target, translate's Param would refuse its
    empty `languages`)."""
    out = stage_folders(root)
    teacher = teacher or {"backend": "transformers", "model": model, "api_base": None}
    generation = {"model": teacher["model"], "backend": teacher["backend"], "n": n,
                  "max_new_tokens": max_new_tokens, "shards": 1,
                  **({"api_base": teacher["api_base"]} if teacher.get("api_base") else {})}
    evaluation = {"n": n, "max_new_tokens": max_new_tokens, "backend": "transformers",
                  "shards": 1, **({"limit": limit} if limit else {})}
    publish = ({"dataset_repo": publish_repo, "checkpoints_repo": publish_repo}
               if publish_repo else {"dataset_repo": "local/multiplt-main-job",
                                     "dry_run": publish_dir})
    # other_inputs log: a corpus (tests dataset) announced before the job began, and handed to
    # the job's run with its own, is named in that run's log and not run: it is not the job's
    # work, and its run would read the job's settings
    variables = {
        "multiplt_testgen": {**generation, "out": out["testgen"], "other_inputs": "log"},
        "multiplt_translate": {**generation, "out": out["translate"], "other_inputs": "log",
                               "languages": translation_languages(languages, targets)},
        "multiplt_finetune": {"base_model": model, "experiment": "main_job", "recipe": "tiny",
                              "epochs": 1, "evaluate_base": False,
                              "training_root": out["training"], **evaluation},
        "multiplt_publish": publish,
    }
    paused = paused_dags(languages, targets)
    return {dag_id: value for dag_id, value in variables.items() if dag_id not in paused}


def set_variable(client, key: str, value: dict) -> None:
    import json

    client.set_variable(key, json.dumps(value), "set by the main job")


def _variable_path(key: str) -> str:
    return f"/api/v2/variables/{urllib.parse.quote(key, safe='')}"


#: what Airflow's REST API answers in place of a sensitive value (a key it deems secret)
MASK = "***"


def save_variables(client, keys) -> dict[str, dict | None]:
    """What the Variables `keys` hold before the job sets them: {key: {"value", "description"}},
    None for a Variable that does not exist (`restore_variables` deletes it again)."""
    saved: dict[str, dict | None] = {}
    for key in keys:
        found = _get_variable(client, key)
        saved[key] = None if found is None else {"value": found.get("value"),
                                                 "description": found.get("description")}
    return saved


def _get_variable(client, key: str) -> dict | None:
    """The REST answer for Variable `key`, None where it does not exist."""
    from multiplt_airflow.rest import AirflowAPIError

    try:
        return client.request("GET", _variable_path(key))
    except AirflowAPIError as exc:
        if exc.status != 404:
            raise
        return None


def masked_variables(saved: dict[str, dict | None]) -> list[str]:
    """The keys of `saved` whose value the API gave masked (`***`): the job could not set them
    back (writing the masked value would destroy the secret), so it refuses to start."""
    return [key for key, before in saved.items()
            if before is not None and MASK in str(before["value"])]


def _parsed(value):
    """A Variable's value as JSON (Airflow re-serializes a JSON value it gives back), else as is."""
    import json

    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def restore_variables(client, saved: dict[str, dict | None], job_set: dict) -> dict[str, str]:
    """Set each Variable of `saved` back to what it held before the job, deleting those that did
    not exist, so that later runs, by hand or by events, never go on with the job's settings;
    `job_set`: {key: value} the job set (`set_variable`). Values are compared as parsed JSON: a
    Variable that holds what it held before is not written again (the one set back is equal as
    JSON, maybe not in its text); one that no longer holds what the job set (changed or deleted
    since, by someone else) is left as it is. A Variable whose REST calls fail (an error answer,
    the server not answering) does not keep the others from being set back. Returns {key:
    "restored" | "deleted" | "unchanged" | "changed" | "failed: <the error>"}."""
    from multiplt_airflow.rest import AirflowAPIError

    outcome: dict[str, str] = {}
    for key, before in saved.items():
        try:
            outcome[key] = _restore(client, key, before, job_set)
        except Exception as exc:
            if not isinstance(exc, AirflowAPIError) and not transient(exc):
                raise
            outcome[key] = f"failed: {_said(exc)}"
    return outcome


def _restore(client, key: str, before: dict | None, job_set: dict) -> str:
    found = _get_variable(client, key)
    now = None if found is None else _parsed(found.get("value"))
    if before is None and found is None:
        return "unchanged"
    if (before is not None and found is not None and now == _parsed(before["value"])
            and (found.get("description") or "") == (before.get("description") or "")):
        return "unchanged"
    if found is None or key not in job_set or now != job_set[key]:
        return "changed"
    if before is None:
        client.request("DELETE", _variable_path(key), ok=(204, 404))
        return "deleted"
    client.set_variable(key, before["value"], before.get("description") or "")
    return "restored"


def when(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _listing(client, dag_id: str, state: str | None = None) -> list[dict]:
    """The DAG's latest runs (at most 100), whoever started them; with `state`, those in it."""
    query = "limit=100&order_by=-run_after" + (f"&state={state}" if state else "")
    return client.request("GET", f"/api/v2/dags/{dag_id}/dagRuns?{query}")["dag_runs"]


def queued_runs(client, dag_ids) -> list[tuple[str, str]]:
    """(dag_id, run_id) of the runs of `dag_ids` that are queued: a queued run reads its DAG's
    Variable only when it starts, so one queued before a job would read the job's settings (a
    run triggered while its DAG was paused, or one an earlier job left), and the job refuses to
    start while there is one."""
    return [(dag_id, r["dag_run_id"]) for dag_id in dag_ids
            for r in _listing(client, dag_id, state="queued") if r.get("state") == "queued"]


def _since(dag_runs: list[dict], since: datetime.datetime) -> list[dict]:
    return sorted((r for r in dag_runs if (when(r.get("queued_at")) or since) >= since),
                  key=lambda r: r.get("queued_at") or "")


def events_of(client, dag_id: str, run_id: str) -> list[dict]:
    query = urllib.parse.urlencode({"source_dag_id": dag_id, "source_run_id": run_id, "limit": 100})
    return client.request("GET", f"/api/v2/assets/events?{query}")["asset_events"]


def _run_path(dag_id: str, run_id: str) -> str:
    return f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"


#: the chain DAGs whose runs the Asset events of each chain DAG's runs start (consumers() of the
#: Assets its tasks announce: dags/multiplt_*.py outlets)
DOWNSTREAM = {"multiplt_corpus": ("multiplt_testgen",), "multiplt_testgen": ("multiplt_translate",),
              "multiplt_translate": ("multiplt_finetune", "multiplt_publish"),
              "multiplt_finetune": ("multiplt_publish",), "multiplt_evaluate": ("multiplt_publish",),
              "multiplt_publish": ()}


def new_run_id(now: datetime.datetime | None = None) -> str:
    """A run id for a run the job triggers, chosen before the trigger call (the job counts the run
    as its own before Airflow answers: a Ctrl-C while the answer comes leaves no run it does not
    know), in the form Airflow gives a manual run (`manual__<time>_<8 random characters>`)."""
    import secrets
    import string

    now = now or datetime.datetime.now(datetime.timezone.utc)
    alphabet = string.ascii_letters + string.digits
    return f"manual__{now.isoformat()}_{''.join(secrets.choice(alphabet) for _ in range(8))}"


def transient(exc: BaseException) -> bool:
    """An error a REST call may not give when asked again: an HTTP 5xx answer (e.g. SQLite's
    "database is locked"), a connection refused, reset or timed out, a truncated answer."""
    import http.client

    from multiplt_airflow.rest import AirflowAPIError

    if isinstance(exc, AirflowAPIError):
        return exc.status >= 500
    return isinstance(exc, (OSError, http.client.HTTPException))


#: how many polls in a row may fail with a `transient` error before `follow` gives up
POLL_RETRIES = 5


def asked_again(call, *args):
    """call(*args), made again after a `transient` error (pauses of 2, 4, ... s), up to
    POLL_RETRIES times: the REST reads of the job's report after `follow`, so that one "database
    is locked" answer does not end a finished job without its report."""
    for attempt in range(POLL_RETRIES + 1):
        try:
            return call(*args)
        except Exception as exc:
            if not transient(exc) or attempt == POLL_RETRIES:
                raise
            time.sleep(2 * (attempt + 1))


#: at how many scans in a row the events of a run must be unreadable while the runs they
#: created ended without starting before the job counts those runs as its own and ended, and
#: the runs those events created that did start (`ChainJob.started_unread`) as its own
STUCK_SCANS = 2


class ChainJob:
    """The runs of one main job, started at `since`: those it triggered (`add_root`), every run
    that an Asset event of one of its runs created (the event's `created_dagruns`), and every
    run whose conf's `model` lies under the job's folder `root` (the evaluations multiplt_finetune
    triggers for its checkpoints). Where the events of one of its runs cannot be read because
    runs they created were marked failed before they ever started (`never_started`), those
    runs count as the job's, and so do the runs those events created that did start
    (`started_unread`: found by their DAG and time, as the events cannot name them), with the
    runs their own events create. `paused`: the chain DAGs the job leaves paused, whose runs no
    event starts."""

    def __init__(self, since: datetime.datetime, root: str, paused=()):
        self.since = since
        self.prefix = root.rstrip("/") + "/"
        self.paused = tuple(paused)
        self.roots: set[tuple[str, str]] = set()
        self.started = False  # set by the job once it starts triggering runs
        self.events: dict[tuple[str, str], list[dict]] = {}  # of the job's ended runs
        # as the last scan found them: each chain DAG's latest runs, whoever started them, and
        # those not ended (queued or running)
        self.latest: dict[str, list[dict]] = {}
        self.active: dict[str, list[dict]] = {}
        # the ended runs whose events could not be read, each at how many scans in a row while
        # the runs they created had ended without starting (`never_started`)
        self.stuck: dict[tuple[str, str], int] = {}
        # `started_unread` of each such run, as found when it was first stuck
        self.adopted: dict[tuple[str, str], list[tuple[str, str]]] = {}
        # the scan (counted from 1) at which each run was first listed, and first listed started
        self.scans = 0
        self.first_seen: dict[tuple[str, str], int] = {}
        self.seen_started: dict[tuple[str, str], int] = {}

    def add_root(self, dag_id: str, run_id: str) -> None:
        self.roots.add((dag_id, run_id))

    def _owned(self, run: dict) -> bool:
        model = (run.get("conf") or {}).get("model")
        return isinstance(model, str) and model.startswith(self.prefix)

    def never_started(self, dag_id: str, run: dict) -> list[tuple[str, str]]:
        """The runs of the latest scan that the Asset events of the ended run `run` of `dag_id`
        may have created and that ended without ever starting, when there are such runs and no
        such run is still queued: then they are why Airflow cannot give those events (HTTP
        500, `scan`), and will be until someone clears them. A run that an event created is
        queued after its source run started, in one of the DAGs its events start
        (DOWNSTREAM, but those the job leaves paused); while one of them without a start_date
        is still queued, the scheduler may start it: [] (the events may be read later)."""
        since = when(run.get("start_date")) or when(run.get("queued_at")) or self.since
        waiting = [(dag, r) for dag in DOWNSTREAM.get(dag_id, ()) if dag not in self.paused
                   for r in self.latest.get(dag, [])
                   if not r.get("start_date") and (when(r.get("queued_at")) or since) >= since]
        if any(r["state"] not in TERMINAL for _, r in waiting):
            return []
        return [(dag, r["dag_run_id"]) for dag, r in waiting]

    def started_unread(self, client, dag_id: str, run: dict,
                       members=()) -> list[tuple[str, str]]:
        """The runs that the unreadable Asset events of the ended run `run` of `dag_id` may have
        created and that started (the job follows them as any of its runs; `never_started` gives
        those that did not), found when `scan` first counts that run as stuck and kept as found
        then: Airflow cannot name them (its events endpoint answers 500), so they are the runs
        of the DAGs its events start (DOWNSTREAM, but those the job leaves paused) that were
        created (the earliest of queued_at, run_after, logical_date) at or after `run` started,
        listed by that scan (not later) and started, but none
        - triggered otherwise than by an Asset event: a `run_type` other than asset_triggered
          (someone's manual, scheduled or backfill run), or a conf of settings not the job's
          (an event's run has none);
        - named by a readable event of a run not the job's (`members`) as one it created;
        - listed by a scan before `run` was first seen started (it was there before).
        Assumed: the deployment is the job's own (scripts/main.sh starts the embedded Airflow for
        it), so no one else's run of the chain's earlier DAGs gives unreadable events creating
        runs of those DAGs meanwhile; such a run, or one a scheduler creates for a queued event
        of someone else, would be counted as the job's (the job waits for it, reports it and,
        when it does not end normally, marks it failed). Not found: a run that Airflow defers
        for these events (its DAG at its max_active_runs when they are stuck) and creates later."""
        key = (dag_id, run["dag_run_id"])
        if key in self.adopted:
            return self.adopted[key]
        since = when(run.get("start_date")) or when(run.get("queued_at")) or self.since
        before = self.seen_started.get(key, self.first_seen.get(key, self.scans))
        targets = [dag for dag in DOWNSTREAM.get(dag_id, ()) if dag not in self.paused]
        elsewhere = self._created_elsewhere(client, targets, members)
        found = []
        for dag in targets:
            for r in self.latest.get(dag, []):
                created = (dag, r["dag_run_id"])
                made = [when(r.get(f)) for f in ("queued_at", "run_after", "logical_date")
                        if r.get(f)]
                if (not r.get("start_date") or not made or min(made) < since
                        or r.get("run_type", "asset_triggered") != "asset_triggered"
                        or (r.get("conf") and not self._owned(r)) or created in elsewhere
                        or self.first_seen.get(created, self.scans) < before):
                    continue
                found.append(created)
        self.adopted[key] = found
        return found

    def _created_elsewhere(self, client, targets, members) -> set[tuple[str, str]]:
        """The runs of `targets` that a readable Asset event of a run not among `members` (of
        the DAGs whose events start them, as the last scan listed them) says it created."""
        from multiplt_airflow.rest import AirflowAPIError

        out: set[tuple[str, str]] = set()
        for dag, downstream in DOWNSTREAM.items():
            if not set(downstream) & set(targets):
                continue
            for r in self.latest.get(dag, []):
                if (dag, r["dag_run_id"]) in members or not r.get("start_date"):
                    continue
                try:
                    events = events_of(client, dag, r["dag_run_id"])
                except AirflowAPIError as exc:
                    if exc.status != 500:
                        raise
                    continue
                out |= {(ref.get("dag_id"), ref.get("run_id")) for event in events
                        for ref in event.get("created_dagruns") or []}
        return out

    def scan(self, client) -> tuple[dict[str, list[dict]], list, list]:
        """({dag_id: [run of the job, oldest first]}, the ended runs whose events the server could
        not give this time, [(consumer, event, its time)] for each event of the job whose
        unpaused consumer has no run of it yet). An event whose consumer has no run is read
        again at the next scan (the scheduler creates the run a moment after the event, or, while
        the consumer is at its max_active_runs, once a run of it has ended). Where the events
        cannot be given because the runs they created ended without starting (someone marked
        them failed while they were queued: `never_started`, at STUCK_SCANS scans in a row),
        those runs are the job's (in its runs, ended), so are the runs those events created that
        started (`started_unread`), followed as the job's other runs, and the events are not
        waited for (but read again at each scan)."""
        from multiplt_airflow.rest import AirflowAPIError

        self.latest = {dag: _listing(client, dag) for dag in CHAIN}
        self.scans += 1
        for dag, dag_runs in self.latest.items():
            for r in dag_runs:
                self.first_seen.setdefault((dag, r["dag_run_id"]), self.scans)
                if r.get("start_date"):
                    self.seen_started.setdefault((dag, r["dag_run_id"]), self.scans)
        self.active = {dag: [r for r in dag_runs if r["state"] not in TERMINAL]
                       for dag, dag_runs in self.latest.items()}
        listed = {dag: _since(dag_runs, self.since) for dag, dag_runs in self.latest.items()}
        members = set(self.roots)
        unread: list[tuple[str, str]] = []
        tried: set[tuple[str, str]] = set()  # events that could not be read in this scan
        grew = True
        while grew:
            grew = False
            for dag, dag_runs in listed.items():
                for run in dag_runs:
                    key = (dag, run["dag_run_id"])
                    if key not in members and self._owned(run):
                        members.add(key)
                        grew = True
                    if (key in members and run["state"] in TERMINAL and key not in self.events
                            and key not in tried):
                        try:
                            self.events[key] = events_of(client, dag, run["dag_run_id"])
                            self.stuck.pop(key, None)
                        except AirflowAPIError as exc:
                            # Airflow's events endpoint answers 500 while a run that an event
                            # created has no start_date (it fails the response model): ask
                            # again at the next scan, but where those runs have ended without
                            # ever starting (marked failed while queued), at two scans in a row
                            # (not one 500 of a locked database): they are the job's, so are
                            # the runs the events created that started (`started_unread`), and
                            # the events stay unreadable as long as they are there.
                            if exc.status != 500:
                                raise
                            tried.add(key)
                            ended = self.never_started(dag, run)
                            self.stuck[key] = self.stuck.get(key, 0) + 1 if ended else 0
                            if self.stuck[key] < STUCK_SCANS:
                                unread.append(key)
                                continue
                            for created in ended + self.started_unread(client, dag, run,
                                                                       members):
                                if created not in members:
                                    members.add(created)
                                    grew = True
            for key in [k for k in self.events if k in members]:
                for event in self.events[key]:
                    for ref in event.get("created_dagruns") or []:
                        created = (ref.get("dag_id"), ref.get("run_id"))
                        if created not in members:
                            members.add(created)
                            grew = True
        missing = []
        for key in [k for k in self.events if k in members]:
            for event in self.events[key]:
                created = {ref.get("dag_id") for ref in event.get("created_dagruns") or []}
                for dag in consumers(event.get("name") or ""):
                    if dag not in self.paused and dag not in created:
                        missing.append((dag, event, when(event["timestamp"])))
                        self.events.pop(key, None)  # read again at the next scan
        runs = {dag: [r for r in dag_runs if (dag, r["dag_run_id"]) in members]
                for dag, dag_runs in listed.items()}
        return runs, unread, missing


def follow(client, job: ChainJob, timeout: float, on_change=None, appear_timeout: float = 180,
           on_heartbeat=None, heartbeat_s: float = 60, on_waiting=None) -> dict[str, list[dict]]:
    """Wait until every run of `job` has ended and every consumer of their Asset events (but the
    job's paused DAGs: no event starts them) has a run that the event created; return
    {dag_id: [run, ...]} (oldest first). A run of the job that ended without ever starting
    (marked failed while queued) is in it as it is: no wait for the events of the run before
    it, which Airflow cannot give (ChainJob.scan), but for the runs those events created that
    started (ChainJob.started_unread), waited for as the job's other runs. `on_change(dag_id, run)` on each new state
    of a run; at most once per `heartbeat_s` seconds while the job waits: `on_heartbeat([run,
    ...])` with the runs still working, if any, and `on_waiting([line, ...])` with what else
    it waits for (`waiting_lines`: a run Airflow defers while its DAG is at max_active_runs,
    one not created yet, events not readable yet), if anything. TimeoutError after `timeout`
    seconds, or when an expected run does not appear in `appear_timeout` seconds after its
    event while its consumer has no run queued or running (Airflow defers an Asset-triggered
    run while its DAG is at its max_active_runs: it comes once that run has ended, however long
    it works). A poll whose REST calls fail with a `transient` error is made again (a short
    pause, growing), up to POLL_RETRIES in a row."""
    deadline = time.monotonic() + timeout
    last_beat = time.monotonic()
    seen_states: dict[tuple[str, str], str] = {}
    busy_at: dict[str, datetime.datetime] = {}  # when each consumer was last seen with a run
    failures = 0
    while True:
        try:
            runs, unread, missing = job.scan(client)
        except Exception as exc:
            if not transient(exc) or failures >= POLL_RETRIES or time.monotonic() > deadline:
                raise
            failures += 1
            time.sleep(2 * failures)
            continue
        failures = 0
        for dag, dag_runs in runs.items():
            for run in dag_runs:
                key = (dag, run["dag_run_id"])
                if seen_states.get(key) != run["state"]:
                    seen_states[key] = run["state"]
                    if on_change:
                        on_change(dag, run)
        busy = [{**r, "dag_id": dag} for dag, dag_runs in runs.items() for r in dag_runs
                if r["state"] not in TERMINAL]
        if not busy and not missing and not unread:
            return runs
        now = datetime.datetime.now(datetime.timezone.utc)
        for dag, active in job.active.items():
            if active:
                busy_at[dag] = now
        for dag, event, stamp in missing:
            if (now - max(stamp, busy_at.get(dag, stamp))).total_seconds() > appear_timeout:
                raise TimeoutError(f"{event['name']} was updated at {stamp:%H:%M:%S} but {dag} "
                                   f"has no run after it (is {dag} paused?)")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the chain is still running after {timeout:.0f}s: "
                               f"{[(r['dag_id'], r['state']) for r in busy]}"
                               + (f"; events of {unread} unreadable (HTTP 500)" if unread else "")
                               + (f"; no run yet for {sorted({(d, e['name']) for d, e, _ in missing})}"
                                  if missing else ""))
        if time.monotonic() - last_beat >= heartbeat_s:
            waits = waiting_lines(job, unread, missing) if on_waiting else []
            if on_heartbeat and busy:
                on_heartbeat(busy)
            if waits:
                on_waiting(waits)
            if (on_heartbeat and busy) or waits:
                last_beat = time.monotonic()
        time.sleep(2)


def waiting_lines(job: ChainJob, unread, missing) -> list[str]:
    """What `follow` waits for beside the job's working runs, a line each, from a scan's
    `unread` and `missing` (ChainJob.scan): per consumer DAG, the run of the job's events that
    Airflow defers while the DAG is at its max_active_runs (named with the DAG's runs queued or
    running, whoever's) or that the scheduler has not created yet (with the time of its first
    event, local time); the ended runs whose events cannot be read yet (a run they created is
    still queued)."""
    lines = []
    pending: dict[str, tuple[list[str], list[str], list[datetime.datetime]]] = {}
    for dag, event, stamp in missing:
        names, sources, stamps = pending.setdefault(dag, ([], [], []))
        name = str(event.get("name"))
        if name not in names:
            names.append(name)
        if event.get("source_run_id"):
            source = f"{event.get('source_dag_id')} {event['source_run_id']}"
            if source not in sources:
                sources.append(source)
        if stamp:
            stamps.append(stamp)
    for dag, (names, sources, stamps) in pending.items():
        what = (f"{dag} run of {', '.join(sorted(names))}"
                + (f" (from {', '.join(sources)})" if sources else ""))
        active = job.active.get(dag) or []
        if active:
            lines.append(f"{what} deferred ({dag} at max_active_runs: "
                         + ", ".join(f"{r['dag_run_id']} {r['state']}" for r in active) + ")")
        else:
            lines.append(f"{what} not created yet"
                         + (f" (event at {min(stamps).astimezone():%H:%M:%S})" if stamps else ""))
    for dag, run_id in unread:
        lines.append(f"the Asset events of {dag} {run_id} (Airflow cannot give them while a run they "
                     f"created has not started)")
    return lines


#: task states of a run that is still working (shown by the heartbeat)
WORKING = ("running", "deferred", "up_for_retry", "up_for_reschedule", "queued", "scheduled",
           "restarting")


def working_tasks(client, dag_id: str, run_id: str) -> list[str]:
    """The run's tasks that are working: `task_id[map index] (state)`, running ones first."""
    tis = [ti for ti in client.task_instances(dag_id, run_id) if ti.get("state") in WORKING]
    tis.sort(key=lambda ti: (ti["state"] != "running", ti["task_id"], ti.get("map_index", -1)))
    return [ti["task_id"] + (f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else "")
            + ("" if ti["state"] == "running" else f" ({ti['state']})") for ti in tis]


def _said(exc: BaseException) -> str:
    """An error as part of one line."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


@dataclasses.dataclass
class Stopped:
    """What `stop_runs` did. `ended`: the (dag_id, run_id) it marked failed; `held`: {dag_id:
    why} the DAGs it paused and that stay paused (a run would start there on the job's outputs);
    `queued`: a line per other DAG with Asset events queued since the job started, left as they
    are; `errors`: a line per call that failed for good (a run not marked failed, a DAG not
    paused, the runs not listed); `finished`: those it marked failed that a later scan found
    succeeded."""

    ended: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    held: dict[str, str] = dataclasses.field(default_factory=dict)
    queued: list[str] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    #: the (dag_id, run_id) it marked failed that a later scan found succeeded: the run ended
    #: as the mark came, and the scheduler's write of its success landed last (on SQLite the
    #: scheduler can read a run before the mark and write it after: no row locks)
    finished: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def stop_runs(client, job: ChainJob, settle_s: float = 60, pause_s: float = 2) -> Stopped:
    """End a job that did not end normally, so that none of its runs resumes when Airflow starts
    again (a later job would find them working beside its own) and none starts later on its
    outputs. Its runs are found as its report finds them (`job.scan`: its roots, the runs its
    events created, its checkpoints' evaluations); those unfinished are marked failed (Airflow
    ends their running tasks), and the scan is made again (every `pause_s` seconds, about
    `settle_s` seconds at most) until none of them works, the events of each ended one can be
    read (Airflow answers 500 while a run an event created is queued: the scheduler starts it a
    moment later) and each of those events has its runs (an event given while its consumer was
    at its max_active_runs: the scheduler creates the run once the job's run there is failed),
    and once runs were marked, once more (a run that ended as it was marked shows succeeded when
    the scheduler's write lands: `finished`). The chain's DAGs are not paused meanwhile
    (Airflow queues no event for a paused DAG: someone else's would be lost), but for those
    where a run could still start on the job's outputs
    once the job is over: a consumer whose run of a job's event Airflow still defers (its
    active run is someone else's), and one with a queued run that may be the job's (an event it
    may come from could not be read in time). Those are paused and stay paused (`held`). Other
    Asset events queued since the job started are left (Airflow's API does not say whose a
    queued event is: dropping them could drop someone else's): a line per DAG (`queued`). A
    run of someone else (started by hand, scheduled, or of an earlier job) is not touched. A
    call that fails is made again at the next scan; those that never succeed are in `errors`
    (this goes on past them). The caller sets the other paused flags back as it found them."""
    from multiplt_airflow.rest import AirflowAPIError

    out = Stopped()
    failed: set[tuple[str, str]] = set()  # marked failed (or gone)
    refused: dict[tuple[str, str], str] = {}  # a PATCH that failed, the last error
    scan_error = None
    scanned = None
    passes = max(1, int(settle_s // pause_s))  # counted, not timed: each waits pause_s first

    def fail_unfinished(runs) -> bool:
        """PATCH the job's unfinished runs failed; True when one was (or could not be)."""
        touched = False
        for dag_id, dag_runs in runs.items():
            for run in dag_runs:
                key = (dag_id, run["dag_run_id"])
                if run["state"] in TERMINAL or key in failed:
                    continue
                touched = True
                try:
                    client.request("PATCH", _run_path(dag_id, run["dag_run_id"]),
                                   {"state": "failed"})
                except AirflowAPIError as exc:
                    if exc.status != 404:  # 404: gone, nothing to stop
                        refused[key] = _said(exc)
                        continue
                except Exception as exc:
                    if not transient(exc):
                        raise
                    refused[key] = _said(exc)
                    continue
                failed.add(key)
                refused.pop(key, None)
                out.ended.append(key)
        return touched

    def succeeded_all_the_same(runs) -> None:
        """Move a run marked failed that a scan finds succeeded from `ended` to `finished`:
        the output names it as what it is (its events are followed as any ended run's)."""
        for dag_id, dag_runs in runs.items():
            for run in dag_runs:
                key = (dag_id, run["dag_run_id"])
                if run["state"] == "success" and key in out.ended:
                    out.ended.remove(key)
                    out.finished.append(key)

    def foreign_active(dag_id, runs) -> bool:
        mine = {r["dag_run_id"] for r in runs.get(dag_id, [])}
        return any(r["dag_run_id"] not in mine for r in job.active.get(dag_id, []))

    failures = 0
    quiet = 0  # scans in a row that marked nothing and waited for nothing
    for turn in range(passes + 1):
        if turn:
            time.sleep(pause_s)
        try:
            scanned = job.scan(client)
            scan_error, failures = None, 0
        except Exception as exc:
            if not transient(exc):
                raise
            scan_error, failures = _said(exc), failures + 1
        if scan_error is None:
            runs, unread, missing = scanned
            succeeded_all_the_same(runs)
            touched = fail_unfinished(runs)
            waiting = unread or [m for m in missing if not foreign_active(m[0], runs)]
            quiet = 0 if touched or waiting else quiet + 1
            # once runs were marked, one scan more: a run that ended as it was marked shows
            # succeeded only once the scheduler's write lands (`finished`)
            if quiet >= (2 if out.ended else 1):
                break
        elif failures >= 3:
            break
    if scanned is not None:
        runs, unread, missing = scanned
        queued_for: dict[str, list[str]] = {}  # the job's events no run has taken yet
        for dag_id, event, _stamp in missing:
            names = queued_for.setdefault(dag_id, [])
            if str(event.get("name")) not in names:
                names.append(str(event.get("name")))
        for dag_id, names in queued_for.items():
            out.held[dag_id] = (f"the job's Asset events {', '.join(sorted(names))} are queued "
                                f"for it: once unpaused it would start a run on the job's "
                                f"outputs (DELETE /api/v2/dags/{dag_id}/assets/queuedEvents "
                                f"drops the queued events; then unpause it)")
        for source_dag, source_run in unread:
            for dag_id in DOWNSTREAM.get(source_dag, ()):
                waiting = [r["dag_run_id"] for r in job.latest.get(dag_id, [])
                           if r["state"] == "queued"]
                if dag_id not in job.paused and waiting and dag_id not in out.held:
                    out.held[dag_id] = (f"its queued run {', '.join(waiting)} may be the job's "
                                        f"(the Asset events of {source_dag} {source_run} could "
                                        f"not be read): once unpaused it would start (mark the "
                                        f"job's failed, then unpause it)")
        for dag_id in list(out.held):
            try:
                client.set_paused(dag_id, True)
            except Exception as exc:
                if not transient(exc) and not isinstance(exc, AirflowAPIError):
                    raise
                out.errors.append(f"could not pause {dag_id} ({_said(exc)})")
        if out.held:  # a run the scheduler created before the DAG was paused
            try:
                runs = job.scan(client)[0]
                succeeded_all_the_same(runs)
                fail_unfinished(runs)
            except Exception as exc:
                if not transient(exc):
                    raise
                scan_error = _said(exc)
    if scan_error:
        out.errors.append(f"could not list the job's runs ({scan_error})")
    for (dag_id, run_id), error in refused.items():
        out.errors.append(f"could not mark {dag_id} {run_id} failed ({error})")
    names = {e.get("asset_id"): e.get("name") for events in job.events.values() for e in events}
    for dag_id in CHAIN:
        if dag_id in out.held:
            continue
        try:
            found = client.request("GET", f"/api/v2/dags/{dag_id}/assets/queuedEvents")
        except AirflowAPIError as exc:
            if exc.status != 404:
                out.errors.append(f"could not list the events queued for {dag_id} "
                                  f"({_said(exc)})")
            continue
        except Exception as exc:
            if not transient(exc):
                raise
            out.errors.append(f"could not list the events queued for {dag_id} ({_said(exc)})")
            continue
        assets = [names.get(q.get("asset_id")) or f"asset {q.get('asset_id')}"
                  for q in found.get("queued_events") or []
                  if (when(q.get("created_at")) or job.since) >= job.since]
        if assets:
            out.queued.append(f"{dag_id} ({', '.join(assets)})")
    return out


def skip_reasons(client, dag_id: str, run_id: str) -> list[tuple[str, str]]:
    """(task, reason) of the run's tasks skipped with a message (an empty input or output, a
    publication that is off), from their logs; tasks skipped by the trigger rule have none."""
    tis = client.task_instances(dag_id, run_id)
    out = []
    for ti in sorted(tis, key=lambda t: (t["task_id"], t.get("map_index", -1))):
        if ti["state"] != "skipped" or not ti.get("try_number"):
            continue
        content = client.task_log_content(dag_id, run_id, ti["task_id"], ti["try_number"],
                                          ti.get("map_index", -1))
        for line in content if isinstance(content, list) else []:
            if isinstance(line, dict) and line.get("event") == "Skipping task." and line.get("reason"):
                out.append((ti["task_id"], str(line["reason"])))
    return out


# a stage command's last words (multiplt/cli.py), streamed into the task log by the stage
# operator (plugins/multiplt_airflow/local_stage.py, as "[stderr] ...")
_ERROR_LINE = re.compile(r"multiplt [a-z][\w-]*(?: [a-z][\w-]*)*: error: .*")


def _failure_line(content) -> str | None:
    """The last `multiplt ...: error: ...` line of a task log; without one (a task of the DAG
    itself failed, e.g. a plan refusing its settings) the exception of its last error line."""
    if not isinstance(content, list):
        content = [{"event": line} for line in str(content or "").splitlines()]
    error = None
    for line in content:
        if not isinstance(line, dict):
            line = {"event": str(line)}
        found = _ERROR_LINE.search(str(line.get("event") or ""))
        if found:
            error = found.group(0).strip()
    if error:
        return error
    for line in reversed(content):
        if isinstance(line, dict) and line.get("level") == "error":
            for detail in line.get("error_detail") or []:
                value = (str(detail.get("exc_value") or "").strip().splitlines() or [""])[0]
                return f"{detail.get('exc_type')}: {value}" if value else str(detail.get("exc_type"))
            return str(line.get("event") or "") or None
    return None


def failure_reasons(client, dag_id: str, run_id: str) -> list[tuple[str, str]]:
    """(task[map index], reason) of the run's failed tasks, from their logs (`_failure_line`; a
    task that never ran, e.g. one marked failed when the job stopped its runs, has no log)."""
    from multiplt_airflow.rest import AirflowAPIError

    out = []
    tis = client.task_instances(dag_id, run_id)
    for ti in sorted(tis, key=lambda t: (t["task_id"], t.get("map_index", -1))):
        if ti["state"] != "failed":
            continue
        label = ti["task_id"] + (f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else "")
        reason = None
        if ti.get("try_number"):
            try:
                content = client.task_log_content(dag_id, run_id, ti["task_id"], ti["try_number"],
                                                  ti.get("map_index", -1))
            except AirflowAPIError as exc:
                content, reason = [], f"its log could not be read (HTTP {exc.status})"
            reason = _failure_line(content) or reason
        out.append((label, reason or "no error in its log"))
    return out
