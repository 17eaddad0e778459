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
    dry run into `publish_dir`. Fine-tuning evaluates its checkpoints only: the job evaluates
    the base model itself, beside the chain. No Variable for the DAGs of `paused_dags` (with no
    translation target, translate's Param would refuse its empty `languages`)."""
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
    variables = {
        "multiplt_testgen": {**generation, "out": out["testgen"]},
        "multiplt_translate": {**generation, "out": out["translate"],
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
    since, by someone else) is left as it is. Returns {key: "restored" | "deleted" | "unchanged"
    | "changed"}."""
    outcome: dict[str, str] = {}
    for key, before in saved.items():
        found = _get_variable(client, key)
        now = None if found is None else _parsed(found.get("value"))
        if before is None and found is None:
            outcome[key] = "unchanged"
        elif (before is not None and found is not None and now == _parsed(before["value"])
              and (found.get("description") or "") == (before.get("description") or "")):
            outcome[key] = "unchanged"
        elif found is None or key not in job_set or now != job_set[key]:
            outcome[key] = "changed"
        elif before is None:
            client.request("DELETE", _variable_path(key), ok=(204, 404))
            outcome[key] = "deleted"
        else:
            client.set_variable(key, before["value"], before.get("description") or "")
            outcome[key] = "restored"
    return outcome


def when(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def runs_since(client, dag_id: str, since: datetime.datetime) -> list[dict]:
    data = client.request("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100&order_by=-run_after")
    return sorted((r for r in data["dag_runs"] if (when(r.get("queued_at")) or since) >= since),
                  key=lambda r: r.get("queued_at") or "")


def events_of(client, dag_id: str, run_id: str) -> list[dict]:
    query = urllib.parse.urlencode({"source_dag_id": dag_id, "source_run_id": run_id, "limit": 100})
    return client.request("GET", f"/api/v2/assets/events?{query}")["asset_events"]


def _run_path(dag_id: str, run_id: str) -> str:
    return f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"


class ChainJob:
    """The runs of one main job, started at `since`: those it triggered (`add_root`), every run
    that an Asset event of one of its runs created (the event's `created_dagruns`), and every
    run whose conf's `model` lies under the job's folder `root` (the evaluations multiplt_finetune
    triggers for its checkpoints). `paused`: the chain DAGs the job leaves paused, whose runs no
    event starts."""

    def __init__(self, since: datetime.datetime, root: str, paused=()):
        self.since = since
        self.prefix = root.rstrip("/") + "/"
        self.paused = tuple(paused)
        self.roots: set[tuple[str, str]] = set()
        self.started = False  # set by the job once it starts triggering runs
        self.events: dict[tuple[str, str], list[dict]] = {}  # of the job's ended runs

    def add_root(self, dag_id: str, run_id: str) -> None:
        self.roots.add((dag_id, run_id))

    def _owned(self, run: dict) -> bool:
        model = (run.get("conf") or {}).get("model")
        return isinstance(model, str) and model.startswith(self.prefix)

    def scan(self, client) -> tuple[dict[str, list[dict]], list, list]:
        """({dag_id: [run of the job, oldest first]}, the ended runs whose events the server could
        not give this time, [(consumer, event, its time)] for each event of the job whose
        unpaused consumer has no run of it yet). An event whose consumer has no run is read
        again at the next scan (the scheduler creates the run a moment after the event)."""
        from multiplt_airflow.rest import AirflowAPIError

        listed = {dag: runs_since(client, dag, self.since) for dag in CHAIN}
        members = set(self.roots)
        unread: list[tuple[str, str]] = []
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
                            and key not in unread):
                        try:
                            self.events[key] = events_of(client, dag, run["dag_run_id"])
                        except AirflowAPIError as exc:
                            # Airflow's events endpoint answers 500 while a run that an event
                            # created is still queued (its null start_date fails the response
                            # model): ask again at the next scan.
                            if exc.status != 500:
                                raise
                            unread.append(key)
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
           on_heartbeat=None, heartbeat_s: float = 60) -> dict[str, list[dict]]:
    """Wait until every run of `job` has ended and every consumer of their Asset events (but the
    job's paused DAGs: no event starts them) has a run that the event created; return
    {dag_id: [run, ...]} (oldest first). `on_change(dag_id, run)` on each new state of a run;
    `on_heartbeat([run, ...])` with the runs still working, at most once per `heartbeat_s`
    seconds while some are. TimeoutError after `timeout` seconds, or when an expected run does
    not appear in `appear_timeout` seconds after its event."""
    deadline = time.monotonic() + timeout
    last_beat = time.monotonic()
    seen_states: dict[tuple[str, str], str] = {}
    while True:
        runs, unread, missing = job.scan(client)
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
        for dag, event, stamp in missing:
            if (now - stamp).total_seconds() > appear_timeout:
                raise TimeoutError(f"{event['name']} was updated at {stamp:%H:%M:%S} but {dag} "
                                   f"has no run after it (is {dag} paused?)")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the chain is still running after {timeout:.0f}s: "
                               f"{[(r['dag_id'], r['state']) for r in busy]}"
                               + (f"; events of {unread} unreadable (HTTP 500)" if unread else ""))
        if on_heartbeat and busy and time.monotonic() - last_beat >= heartbeat_s:
            on_heartbeat(busy)
            last_beat = time.monotonic()
        time.sleep(2)


#: task states of a run that is still working (shown by the heartbeat)
WORKING = ("running", "deferred", "up_for_retry", "up_for_reschedule", "queued", "scheduled",
           "restarting")


def working_tasks(client, dag_id: str, run_id: str) -> list[str]:
    """The run's tasks that are working: `task_id[map index] (state)`, running ones first."""
    tis = [ti for ti in client.task_instances(dag_id, run_id) if ti.get("state") in WORKING]
    tis.sort(key=lambda ti: (ti["state"] != "running", ti["task_id"], ti.get("map_index", -1)))
    return [ti["task_id"] + (f"[{ti['map_index']}]" if ti.get("map_index", -1) >= 0 else "")
            + ("" if ti["state"] == "running" else f" ({ti['state']})") for ti in tis]


def stop_runs(client, job: ChainJob) -> tuple[list[tuple[str, str]], list[str]]:
    """End a job that did not end normally, so that none of its runs resumes when Airflow starts
    again (a later job would find them working beside its own): pause the chain DAGs (the
    scheduler starts no further run of them while this works), find the job's runs as its
    report does (`job.scan`: its roots, the runs its events created, its checkpoints'
    evaluations) and mark those unfinished failed (Airflow ends their running tasks). A run of
    someone else (started by hand, scheduled, or of an earlier job) is not touched. Asset events
    still queued for a chain DAG since the job started are left: Airflow's API does not say
    whose event a queued one is, so dropping them could drop someone else's. Returns (the
    (dag_id, run_id) marked failed, a line per DAG with such queued events). The caller sets
    the paused flags back as it found them: a DAG paused before the job stays paused, and its
    queued events start no run."""
    from multiplt_airflow.rest import AirflowAPIError

    for dag_id in CHAIN:
        client.set_paused(dag_id, True)
    runs, _unread, _missing = job.scan(client)
    ended = []
    for dag_id, dag_runs in runs.items():
        for run in dag_runs:
            if run["state"] in TERMINAL:
                continue
            try:
                client.request("PATCH", _run_path(dag_id, run["dag_run_id"]), {"state": "failed"})
            except AirflowAPIError as exc:
                if exc.status != 404:
                    raise
            ended.append((dag_id, run["dag_run_id"]))
    names = {e.get("asset_id"): e.get("name") for events in job.events.values() for e in events}
    queued = []
    for dag_id in CHAIN:
        try:
            found = client.request("GET", f"/api/v2/dags/{dag_id}/assets/queuedEvents")
        except AirflowAPIError as exc:
            if exc.status != 404:
                raise
            continue
        assets = [names.get(q.get("asset_id")) or f"asset {q.get('asset_id')}"
                  for q in found.get("queued_events") or []
                  if (when(q.get("created_at")) or job.since) >= job.since]
        if assets:
            queued.append(f"{dag_id} ({', '.join(assets)})")
    return ended, queued


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
