"""What the main job prints after the chain: the funnel of every stage, read from the stages'
own files (corpus and testgen `funnel.json` steps, translate's per-language counts, the training
manifests named by the checkpoints Asset events, the publication dry-run folder or, for a real
publication, the Hub repo's data files and checkpoint tags). A job with no translation target
among its languages left translate and finetune paused (chain_job.paused_dags): `not_run`
says why they did not run, and the publication had no dataset of the job to publish."""

from __future__ import annotations

import os

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
                   not_run: str | None = None) -> list[str]:
    """One line per training output announced by multiplt_finetune: its checkpoints (manifest
    rows). `not_run`: the job left multiplt_finetune paused, this is why."""
    from multiplt import storage

    if not_run:
        return [f"finetune: did not run (no translation to fine-tune on): {not_run}"]
    if not finetune_ran:
        return ["finetune: did not run (no dataset was announced)"]
    outputs = [o for e in checkpoint_events for o in (e.get("extra") or {}).get("outputs", [])]
    if not outputs:
        return ["finetune: no checkpoint announced"]
    lines = ["finetune:"]
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
    send (what the repos hold is from earlier jobs)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    if not publish_runs:
        return [f"publish: did not run (nothing was announced); nothing sent to {repo}"]
    api = HfApi()
    lines = [] if translated else [f"publish: no dataset or checkpoint of this job sent to {repo} "
                                   "(translation and fine-tuning did not run)"]
    try:
        files = sorted(f for f in api.list_repo_files(repo, repo_type="dataset")
                       if f.startswith("data/"))
        lines += [f"publish: dataset {repo}: {len(files)} data file(s)", *(f"  {f}" for f in files)]
    except HfHubHTTPError as exc:
        lines.append(f"publish: dataset {repo}: not on the Hub ({str(exc).splitlines()[0]})")
    try:
        tags = sorted(t.name for t in api.list_repo_refs(repo).tags)
        lines.append(f"publish: model {repo}: checkpoint tags [{', '.join(tags)}]")
    except HfHubHTTPError as exc:
        lines.append(f"publish: model {repo}: not on the Hub ({str(exc).splitlines()[0]})")
    return lines


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
