"""What the main job prints after the chain: the funnel of every stage, read from the stages'
own files (corpus and testgen `funnel.json` steps, translate's per-language counts, the training
manifests named by the checkpoints Asset events, the publication dry-run folder or, for a real
publication, the Hub repo's data files and checkpoint tags). A job with no translation target
among its languages left translate and finetune paused (chain_job.paused_dags): `not_run`
says why they did not run, and the publication had no dataset of the job to publish. A REST
answer the report cannot read (`unreadable`: the Asset events of a run, a run's tasks, the Hub
repos) is one line naming what is not known, and the rest of the report goes on."""

from __future__ import annotations

import os


def unreadable(exc: BaseException) -> bool:
    """An error of one of the report's REST reads that the report goes on past, naming it in
    one line: an error answer of Airflow's API, or an error that a read asked again
    (chain_job.asked_again) kept getting (HTTP 5xx, the server not answering)."""
    from multiplt_airflow import chain_job
    from multiplt_airflow.rest import AirflowAPIError

    return isinstance(exc, AirflowAPIError) or chain_job.transient(exc)


def job_events(client, job, dag_id: str,
               dag_runs: list[dict]) -> tuple[list[dict], list[tuple[str, str]]]:
    """The Asset events of the job's runs `dag_runs` of `dag_id`, as `chain_job.follow` read
    them (`job.events`), and (`dag_id run_id`, why) for each run whose events are not known.
    Airflow cannot give the events of a run while a run they created has never started (HTTP
    500): where that run ended so (marked failed while queued, `ChainJob.never_started`),
    `follow` counted it as the job's and did not wait for the events; they are not asked again
    (the answer stays 500 as long as that run is there). A run whose events `follow` did not
    read otherwise is read now (asked again after a transient error); an error answer that
    stays (`unreadable`) makes it one of the runs whose events are not known."""
    from multiplt_airflow import chain_job

    events: list[dict] = []
    gaps: list[tuple[str, str]] = []
    for run in dag_runs:
        key = (dag_id, run["dag_run_id"])
        name = f"{dag_id} {run['dag_run_id']}"
        if key in job.events:
            events += job.events[key]
        elif job.stuck.get(key, 0) >= chain_job.STUCK_SCANS:
            created = [f"{d} {r}" for d, r in job.never_started(dag_id, run)]
            which = (f"{created[0]}, a run they created, has" if len(created) == 1 else
                     f"{', '.join(created)}, runs they created, have" if created else
                     "a run they created has")
            gaps.append((name, f"its Asset events cannot be read (Airflow answers HTTP 500 "
                               f"for them while {which} never started)"))
        else:
            try:
                events += chain_job.asked_again(chain_job.events_of, client, dag_id,
                                                run["dag_run_id"])
            except Exception as exc:
                if not unreadable(exc):
                    raise
                gaps.append((name, f"its Asset events could not be read ({chain_job._said(exc)})"))
    return events, gaps


def _funnel(folder: str) -> dict | None:
    from multiplt import storage

    uri = storage.join(folder, "funnel.json")
    return storage.read_json(uri) if storage.exists(uri) else None


def steps_lines(stage: str, folder: str) -> list[str]:
    """A corpus or testgen funnel: one line per step, rows in -> out."""
    funnel = _funnel(folder)
    if funnel is None:
        return [f"{stage}: did not run (no {folder}/funnel.json)"]
    lines = [f"{stage}: {folder}"]
    for step in funnel.get("steps") or []:
        lines.append(f"  {step['name']:<24} {step['in']:>7} -> {step['out']:>7}")
    return lines


def translate_lines(folder: str, not_run: str | None = None) -> list[str]:
    """translate's counts per language; `not_run` (chain_job.no_target_reason): the job left
    multiplt_translate paused, this is why."""
    from multiplt.translation.collect import COUNTS

    if not_run:
        return [f"translate: did not run: {not_run}"]
    # translate's funnel.json counts per language, in order (docs/translation.md)
    steps = ("functions_in", "prompts_built", *COUNTS)
    funnel = _funnel(folder)
    if funnel is None:
        return [f"translate: did not run (no {folder}/funnel.json)"]
    lines = [f"translate: {folder}"]
    for lang in sorted(funnel):
        counts = funnel[lang]
        lines.append(f"  {lang}: " + " -> ".join(f"{step} {counts.get(step, 0)}"
                                                 for step in steps))
    return lines


def finetune_lines(checkpoint_events: list[dict], finetune_ran: bool,
                   not_run: str | None = None, unknown=()) -> list[str]:
    """One line per training output announced by multiplt_finetune: its checkpoints (manifest
    rows). `not_run`: the job left multiplt_finetune paused, this is why. `unknown`: (run, why)
    of the finetune runs whose events could not be read (`job_events`): a line each, their
    checkpoints are not known."""
    from multiplt import storage

    if not_run:
        return [f"finetune: did not run (no translation to fine-tune on): {not_run}"]
    if not finetune_ran:
        return ["finetune: did not run (no dataset was announced)"]
    outputs = [o for e in checkpoint_events for o in (e.get("extra") or {}).get("outputs", [])]
    gaps = [f"  {run}: its checkpoints are not known: {why}" for run, why in unknown]
    if not outputs and not gaps:
        return ["finetune: no checkpoint announced"]
    lines = ["finetune:", *gaps]
    for output in outputs:
        manifest = storage.join(output["out"], "manifest.jsonl")
        rows = storage.read_jsonl(manifest) if storage.exists(manifest) else []
        tags = ", ".join(str(r.get("tag")) for r in rows)
        lines.append(f"  {output['lang']}: {len(rows)} checkpoint(s) [{tags}] in {output['out']}")
    return lines


def publish_lines(folder: str, translated: bool = True) -> list[str]:
    """The files of the publication dry run (what would have been uploaded); `translated` False:
    the job translated nothing, so there was no dataset to write."""
    from multiplt.hub.bundle import DRY_RUN_MARK

    files = sorted(os.path.relpath(os.path.join(d, f), folder)  # but the dry run's own mark
                   for d, _, names in os.walk(folder) for f in names
                   if f != DRY_RUN_MARK) if os.path.isdir(folder) else []
    if not files:
        return [f"publish (dry run): nothing written to {folder}"
                + ("" if translated else " (no dataset: translation did not run)")]
    return [f"publish (dry run): {len(files)} file(s) in {folder}", *(f"  {f}" for f in files)]


def hub_lines(repo: str, publish_runs: list[dict], translated: bool = True) -> list[str]:
    """What the publication left on the Hub (HF_ENDPOINT): the dataset repo's data files and the
    model repo's checkpoint tags; `translated` False: the job had no dataset or checkpoint to
    send (what the repos hold is from earlier jobs). A repo the Hub does not have is "not on the
    Hub"; one whose answer cannot be read (another error answer, the Hub not answering, offline
    mode) is "could not be read", a line each: the report goes on."""
    from huggingface_hub import HfApi

    if not publish_runs:
        return [f"publish: did not run (nothing was announced); nothing sent to {repo}"]
    api = HfApi()
    lines = [] if translated else [f"publish: no dataset or checkpoint of this job sent to {repo} "
                                   "(translation and fine-tuning did not run)"]
    try:
        files = sorted(f for f in api.list_repo_files(repo, repo_type="dataset")
                       if f.startswith("data/"))
        lines += [f"publish: dataset {repo}: {len(files)} data file(s)", *(f"  {f}" for f in files)]
    except Exception as exc:
        lines.append(f"publish: dataset {repo}: {_hub_trouble(exc)}")
    try:
        tags = sorted(t.name for t in api.list_repo_refs(repo).tags)
        lines.append(f"publish: model {repo}: checkpoint tags [{', '.join(tags)}]")
    except Exception as exc:
        lines.append(f"publish: model {repo}: {_hub_trouble(exc)}")
    return lines


def _hub_trouble(exc: Exception) -> str:
    """What a Hub read's error says of the repo, for `hub_lines`; an error that is not the Hub's
    answer nor its absence (a bug) is raised again."""
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    from multiplt.hub import retry

    if isinstance(exc, RepositoryNotFoundError) or retry.status_of(exc) == 404:
        return f"not on the Hub ({str(exc).splitlines()[0]})"
    if isinstance(exc, (HfHubHTTPError, OSError)) or retry.is_retryable(exc):
        return f"could not be read ({retry.describe(exc)})"
    raise exc


def result_runs(events: list[dict]) -> set[str]:
    """The run folders that `multiplt_results` Asset events (announce_results of
    multiplt_evaluate) name: what this job's evaluate runs recorded."""
    return {run["run"] for e in events if e.get("name") == "multiplt_results"
            for run in (e.get("extra") or {}).get("runs") or [] if run.get("run")}


def print_scores(store: str, runs: set[str], experiment: str) -> bool:
    """The pass@k table of this job's rows in the results store (those of its evaluate runs'
    folders, `runs`, under `experiment`), one block per model. By folder, not by when a row was
    recorded: a later job's evaluation of the same base model reuses the folder (nothing is
    sampled again) and the store keeps the row's first `created_at`."""
    import sys

    from multiplt.results import read_store

    df = read_store(store)
    rows = [r for r in df.to_dicts() if r.get("experiment") == experiment and r.get("run_uri") in runs]
    if not rows:
        print(f"no results of this job in {store}", file=sys.stderr)
        return False
    models = sorted({(r["model"], r.get("revision") or "", r.get("epoch") or 0) for r in rows},
                    key=lambda m: (m[2], m[0], m[1]))
    for model, revision, epoch in models:
        label = f"{model}@{revision}" if revision else model
        print(f"\npass@k of {label} (epoch {epoch}; results store: {store})")
        print(f"{'language':<10} {'k':>3} {'estimate':>9} {'problems':>9}  run")
        mine = [r for r in rows if (r["model"], r.get("revision") or "", r.get("epoch") or 0)
                == (model, revision, epoch)]
        for r in sorted(mine, key=lambda r: (r["lang"], r["k"])):
            print(f"{r['lang']:<10} {r['k']:>3} {r['estimate']:>9.4f} {r['num_problems']:>9}  "
                  f"{r['run_id']}")
    return True
