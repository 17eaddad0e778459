"""Params and plans of `multiplt_publish` and `multiplt_watch` (pure functions, no I/O).

Both DAGs read their settings as: Param defaults <- the Airflow Variable of the same name
(`multiplt_publish`, `multiplt_watch`: a JSON object) <- the run's conf. Asset-triggered runs
have no conf, so the Variable is where a deployment says what to publish and what to run for a
new model; the same `multiplt_watch` Variable also holds the watcher's watch list.
"""

from __future__ import annotations

from multiplt_pipelines.params import LANGUAGES_SCHEMA, SAMPLING, TARGET_LANGUAGES, _p
from multiplt_pipelines.params import EXPERIMENT_PATTERN

DATASET_ASSET_PREFIX = "multiplt_dataset_"  # one dataset Asset per language: multiplt_dataset_lua, ...
NEW_BASE_MODEL = "multiplt_new_base_model"

PUBLISH = {
    "dataset_repo": _p(None, "Hub dataset repo OWNER/NAME for datasets (null = do not publish "
                       "datasets)", type=["null", "string"]),
    "checkpoints_repo": _p(None, "Hub model repo for checkpoints; `{base}` is replaced by the base "
                           "model's name (null = do not publish checkpoints)", type=["null", "string"]),
    "results_repo": _p(None, "Hub dataset repo for the results store (null = do not publish "
                       "results)", type=["null", "string"]),
    "tags": _p("all", "checkpoints to publish: all, best, or comma-separated tags", type="string",
               minLength=1),
    "private": _p(False, "create new repos private", type="boolean"),
    "dataset_uri": _p(None, "a manual run: the dataset folder to publish (else the dataset "
                      "Asset events')", type=["null", "string"]),
    "training_outputs": _p(None, "a manual run: training outputs to publish (else the checkpoints "
                           "Asset events')", type=["null", "array"], items={"type": "string"}),
}

WATCH = {
    "model": _p(None, "a manual run: the base model to run for (else the models of the "
                "triggering new-model events)", type=["null", "string"]),
    "finetune_languages": _p([], "languages to fine-tune each new model on ([] = no fine-tuning)",
                             type="array", items={"type": "string", "enum": TARGET_LANGUAGES},
                             uniqueItems=True),
    "evaluate_languages": _p(list(TARGET_LANGUAGES), "languages to evaluate each new model on",
                             **LANGUAGES_SCHEMA),
    "experiment": _p("multiplt", "experiment name of the fine-tuning", type="string",
                     pattern=EXPERIMENT_PATTERN),
    "recipe": _p("starcoderbase-1b", "training recipe", type="string", minLength=1),
    "dataset": _p("nuprl/MultiPL-T", "training data (`{lang}` = each language code)", type="string",
                  minLength=1),
    "epochs": _p(None, "override the recipe's epochs", type=["null", "integer"], minimum=1),
    **SAMPLING,
}


class NotPublishing(Exception):
    """This publication is off for this run; the message says why (the task is skipped)."""


def effective(params: dict, conf: dict | None, variable: dict | None) -> dict:
    """Param values, with the Variable's values for keys the run's conf did not set."""
    conf = conf or {}
    out = dict(params)
    for key, value in (variable or {}).items():
        if key in params and key not in conf:
            out[key] = value
    return out


def dataset_commands(settings: dict, events: list[dict]) -> list[list[str]]:
    repo = settings.get("dataset_repo")
    if not repo:
        raise NotPublishing("not publishing datasets: dataset_repo is not set (Param or the "
                            "multiplt_publish Variable)")
    uris = [settings["dataset_uri"]] if settings.get("dataset_uri") else sorted({
        (e["extra"] or {}).get("dataset_uri") or e["uri"] for e in events
        if e["name"].startswith(DATASET_ASSET_PREFIX)})
    if not uris:
        raise NotPublishing("no dataset to publish: no dataset Asset event and no dataset_uri")
    private = ["--private"] if settings.get("private") else []
    return [["publish", "dataset", "--from", uri, "--repo", repo, *private] for uri in uris]


def _base_name(base: str) -> str:
    """`bigcode/starcoderbase-1b` -> `starcoderbase-1b` (characters a repo name may hold)."""
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", base.rstrip("/").rsplit("/", 1)[-1]).strip("_.-") or "model"


def asset_events(triggering_asset_events) -> list[dict]:
    """The run's triggering Asset events as [{"name", "uri", "extra"}] (each once)."""
    out, seen = [], set()
    for events in (triggering_asset_events or {}).values():
        for event in events:
            key = (event.asset.name, event.asset.uri, str(event.timestamp))
            if key not in seen:
                seen.add(key)
                out.append({"name": event.asset.name, "uri": event.asset.uri,
                            "extra": dict(event.extra or {})})
    return out


def checkpoint_commands(settings: dict, events: list[dict], results_store: str) -> list[list[str]]:
    """One command per target repo (all its training outputs in one command, so that commits to
    one repo never race)."""
    template = settings.get("checkpoints_repo")
    if not template:
        raise NotPublishing("not publishing checkpoints: checkpoints_repo is not set (Param or the "
                            "multiplt_publish Variable)")
    outputs: list[tuple[str, str]] = []  # (base, out)
    if settings.get("training_outputs"):
        outputs = [("", out) for out in settings["training_outputs"]]
    for event in events:
        extra = event["extra"] or {}
        if event["name"] == "multiplt_checkpoints":
            outputs += [(extra.get("base_model", ""), o["out"]) for o in extra.get("outputs", [])]
    if not outputs:
        raise NotPublishing("no checkpoints to publish: no checkpoints Asset event and no "
                            "training_outputs")
    by_repo: dict[str, list[str]] = {}
    for base, out in outputs:
        if "{base}" in template and not base:
            raise ValueError(f"checkpoints_repo {template!r} needs the base model, which a manual "
                             f"run's training_outputs do not give; use a plain OWNER/NAME")
        repo = template.replace("{base}", _base_name(base)) if base else template
        by_repo.setdefault(repo, [])
        if out not in by_repo[repo]:
            by_repo[repo].append(out)
    private = ["--private"] if settings.get("private") else []
    return [["publish", "checkpoints", *[a for out in outs for a in ("--from", out)], "--repo", repo,
             "--tags", settings.get("tags") or "all", "--results-store", results_store, *private]
            for repo, outs in sorted(by_repo.items())]


def results_commands(settings: dict, events: list[dict], results_store: str) -> list[list[str]]:
    repo = settings.get("results_repo")
    if not repo:
        raise NotPublishing("not publishing results: results_repo is not set (Param or the "
                            "multiplt_publish Variable)")
    if events and not any(e["name"] == "multiplt_results" for e in events):
        raise NotPublishing("no results event in this run: the results store did not change")
    private = ["--private"] if settings.get("private") else []
    return [["publish", "results", "--store", results_store, "--repo", repo, *private]]


SAMPLING_KEYS = tuple(SAMPLING)


def watch_models(settings: dict, events: list[dict]) -> list[str]:
    if settings.get("model"):
        return [settings["model"]]
    models = []
    for event in events:
        payload = (event["extra"] or {}).get("payload") or event["extra"] or {}
        model = payload.get("model_id")
        if model and model not in models:
            models.append(model)
    return models


def watch_triggers(settings: dict, models: list[str], run_id: str) -> dict[str, list[dict]]:
    """{"finetune": [...], "evaluate": [...]}: TriggerDagRunOperator kwargs (conf and a stable
    run id) per new model."""
    from multiplt.evaluation.runs import safe_part

    sampling = {k: settings[k] for k in SAMPLING_KEYS if k in settings}
    out: dict[str, list[dict]] = {"finetune": [], "evaluate": []}
    for model in models:
        rid = lambda what: safe_part(f"{run_id}__{what}__{model}")[:240]  # noqa: E731
        out["evaluate"].append({"trigger_run_id": rid("evaluate"), "conf": {
            "model": model, "revision": None, "tokenizer": None,
            "languages": list(settings["evaluate_languages"]), "experiment": None, "epoch": 0,
            **sampling}})
        if settings.get("finetune_languages"):
            out["finetune"].append({"trigger_run_id": rid("finetune"), "conf": {
                "base_model": model, "languages": list(settings["finetune_languages"]),
                "experiment": settings["experiment"], "recipe": settings["recipe"],
                "dataset": settings["dataset"], "epochs": settings.get("epochs"),
                "evaluate_base": False, **sampling}})
    return out


RERUN_MODELS = _p([], "periodic (scheduled) runs: the models to evaluate, each a model name or "
                  "{model, revision, tokenizer}; [] = nothing to rerun",
                  type="array", items={"type": ["string", "object"]})


def evaluate_params(evaluate: dict, schedule: str | None) -> dict:
    """multiplt_evaluate's Params: with a periodic schedule `model` may be null (scheduled runs
    take `rerun_models`), as Airflow requires every Param of a scheduled DAG to have a default."""
    params = {**evaluate, "rerun_models": RERUN_MODELS}
    if schedule:
        params["model"] = {**evaluate["model"], "default": None, "type": ["null", "string"]}
    return params


def evaluation_targets(settings: dict, scheduled: bool) -> list[dict]:
    """The (model, revision, tokenizer) overrides of each evaluation of this run: the
    `rerun_models` list for a scheduled run (or a manual run without `model`), else the model."""
    if settings.get("model") and not scheduled:
        return [{}]
    targets = []
    for entry in settings.get("rerun_models") or []:
        entry = {"model": entry} if isinstance(entry, str) else dict(entry)
        if not entry.get("model"):
            raise ValueError(f"rerun_models entry {entry} names no model")
        targets.append({"model": entry["model"], "revision": entry.get("revision"),
                        "tokenizer": entry.get("tokenizer")})
    if not targets and not settings.get("model"):
        raise NotPublishing("nothing to evaluate: no `model` and an empty `rerun_models`")
    return targets or [{}]
