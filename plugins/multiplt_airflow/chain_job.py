"""The main job's chain on a running deployment (scripts/embedded_airflow.py main-job).

Sets the chain DAGs' Variables (the settings of their Asset-triggered runs), unpauses them,
triggers `multiplt_corpus`, then follows the chain through the REST API: every finished run's
Asset events name the DAGs that must run next, and the job waits until each of those has a run
queued after the event and every run has ended. With no translation target among the job's
languages (`--languages py`), `multiplt_translate` and `multiplt_finetune` are left paused
(`paused_dags`): the chain stops after testgen and nothing waits for them. Standard library
only (runs outside Airflow).
"""

from __future__ import annotations

import datetime
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


def no_target_reason(languages: list[str], targets: list[str]) -> str:
    """Why translation and fine-tuning do not run in a job of `languages`."""
    return (f"no translation target among the chosen languages ({', '.join(languages)}); "
            f"the translation targets are {', '.join(targets)} (add one to --languages)")


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


def follow(client, since: datetime.datetime, timeout: float, on_change=None,
           appear_timeout: float = 180, paused: tuple[str, ...] | list[str] = ()
           ) -> dict[str, list[dict]]:
    """Wait until every chain run queued since `since` has ended and every consumer of their
    Asset events has a run queued after the event, but the `paused` DAGs (`paused_dags`: no
    event starts them); return {dag_id: [run, ...]} (oldest first).
    TimeoutError after `timeout` seconds, or when an expected run does not appear in
    `appear_timeout` seconds after its event."""
    from multiplt_airflow.rest import AirflowAPIError

    deadline = time.monotonic() + timeout
    events: dict[tuple[str, str], list[dict]] = {}
    seen_states: dict[tuple[str, str], str] = {}
    while True:
        runs = {dag: runs_since(client, dag, since) for dag in CHAIN}
        unread = []  # ended runs whose events the server could not give this time
        for dag, dag_runs in runs.items():
            for run in dag_runs:
                key = (dag, run["dag_run_id"])
                if seen_states.get(key) != run["state"]:
                    seen_states[key] = run["state"]
                    if on_change:
                        on_change(dag, run)
                if run["state"] in TERMINAL and key not in events:
                    try:
                        events[key] = events_of(client, dag, run["dag_run_id"])
                    except AirflowAPIError as exc:
                        # Airflow's events endpoint answers 500 while a run that an event
                        # created is still queued (its null start_date fails the response
                        # model): ask again at the next poll.
                        if exc.status != 500:
                            raise
                        unread.append(key)
        missing = []
        for event in (e for evs in events.values() for e in evs):
            stamp = when(event["timestamp"])
            for dag in consumers(event.get("name") or ""):
                if dag in paused:
                    continue
                if not any((when(r.get("queued_at")) or stamp) >= stamp for r in runs[dag]):
                    missing.append((dag, event, stamp))
        busy = [r for dag_runs in runs.values() for r in dag_runs if r["state"] not in TERMINAL]
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
        time.sleep(2)


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
