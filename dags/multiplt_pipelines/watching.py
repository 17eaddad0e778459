"""Params and plans of `multiplt_watch` (the runs for each new base model the watcher
announces) and of `multiplt_evaluate`'s periodic reruns (pure functions, no I/O). Settings
precedence as in publishing.py; the `multiplt_watch` Variable also holds the watch list."""

from __future__ import annotations

from multiplt_pipelines.params import (EXPERIMENT_PATTERN, LANGUAGES_SCHEMA, MULTIPLT_DATASET,
                                       RECIPE_DESCRIPTION, SAMPLING, TARGET_LANGUAGES,
                                       TRIMMED_PATTERN, _p, languages_schema)

NEW_BASE_MODEL = "multiplt_new_base_model"

WATCH = {
    "model": _p(None, "a manual run: the base model to run for (else the models of the "
                "triggering new-model events)", type=["null", "string"], pattern=TRIMMED_PATTERN),
    "finetune_languages": _p([], "languages to fine-tune each new model on ([] = no fine-tuning)",
                             **{**languages_schema(TARGET_LANGUAGES), "minItems": 0}),
    "evaluate_languages": _p(list(TARGET_LANGUAGES), "languages to evaluate each new model on",
                             **LANGUAGES_SCHEMA),
    "experiment": _p("multiplt", "experiment name of the fine-tuning", type="string",
                     pattern=EXPERIMENT_PATTERN),
    "recipe": _p("starcoderbase-1b", RECIPE_DESCRIPTION, type="string", minLength=1),
    "dataset": _p(MULTIPLT_DATASET, "training data (`{lang}` = each language code)", type="string",
                  minLength=1),
    "epochs": _p(None, "override the recipe's epochs", type=["null", "integer"], minimum=1),
    **SAMPLING,
    # a new base model is loaded by the evaluation itself: a served model (openai, which would
    # need an api_base this DAG has no Param for) cannot be one
    "backend": _p("transformers", "generation backend of the evaluations", type="string",
                  enum=[name for name in SAMPLING["backend"]["enum"] if name != "openai"]),
}



def watch_settings(params: dict, conf: dict | None, variable: dict | None) -> dict:
    """A watch run's settings: Params, overridden by the `multiplt_watch` Variable, overridden by
    a manual run's conf (publishing.effective). The Variable is also the watcher's watch list,
    whose keys (authors, search, pattern, endpoint, poll_interval, limit, announce_existing,
    pending_hours) are the watcher's own: its `limit` (models per listing) must not become the
    evaluations' `limit` (first N problems). Any other key of the conf or the Variable that is no Param is refused
    (checks.BadParams)."""
    from multiplt.hub.watch import WATCH_LIST_KEYS

    from multiplt_pipelines import checks, publishing

    checks.known_keys(conf, WATCH, "multiplt_watch")
    checks.known_keys(variable, sorted({*WATCH, *WATCH_LIST_KEYS}), "multiplt_watch",
                      "Variable multiplt_watch")
    runs = {k: v for k, v in (variable or {}).items() if k not in WATCH_LIST_KEYS}
    return publishing.effective(params, conf, runs)


def watch_run_settings(params: dict, conf: dict | None, variable: dict | None
                       ) -> tuple[dict, set[str]]:
    """(watch_settings, the keys whose value the Variable set): check_watch's refusals of those
    name the Variable (checks.variable_source), as chain.run_settings' do."""
    from multiplt.hub.watch import WATCH_LIST_KEYS

    settings = watch_settings(params, conf, variable)
    return settings, {key for key in variable or {}
                      if key in params and key not in (conf or {}) and key not in WATCH_LIST_KEYS}


def check_watch(settings: dict, models: list[str]) -> None:
    """What the runs a watch run triggers would refuse in its settings, refused by its `plan`
    (the Variable's values reach the run unchecked; an Asset-triggered run has no conf): each
    Param against its schema, the evaluations' settings and each model's name; with
    `finetune_languages`, the recipe, `dataset`, and a language the dataset has no split for
    (nuprl/MultiPL-T has one for params.published_languages() only), which multiplt_finetune
    would refuse only once triggered. Raises checks.BadParams."""
    from multiplt_pipelines import checks

    checks.schema(settings, WATCH)
    finetune = bool(settings.get("finetune_languages"))
    for model in models:
        checks.sampling(settings, model)
        checks.model_name(model, "transformers" if finetune else settings["backend"])
    if not finetune:
        return
    checks.recipe(settings["recipe"])
    checks.named(settings, ["dataset"])
    checks.splits({lang: settings["dataset"].replace("{lang}", lang)
                   for lang in settings["finetune_languages"]}, param="finetune_languages")


class NothingToEvaluate(Exception):
    """A periodic run with nothing configured to rerun (the plan task is skipped)."""


SAMPLING_KEYS = tuple(SAMPLING)


def _announcements(events: list[dict]) -> list[tuple[str, str | None]]:
    """(model, revision) of each new-model event, oldest first: the commit the model's default
    branch was at when the watcher announced it (None in an event of an earlier watcher)."""
    out = []
    for event in events:
        payload = (event["extra"] or {}).get("payload") or event["extra"] or {}
        if payload.get("model_id"):
            out.append((payload["model_id"], payload.get("revision") or None))
    return out


def watch_models(settings: dict, events: list[dict]) -> list[str]:
    if settings.get("model"):
        return [settings["model"]]
    models = []
    for model, _ in _announcements(events):
        if model not in models:
            models.append(model)
    return models


def watch_revisions(settings: dict, events: list[dict]) -> dict[str, str]:
    """{model: the commit it was announced at} of the triggering events (a model announced twice
    in one batch, its repo created again in between: the latest); none for a manual run's
    `model`, which runs at its default branch."""
    if settings.get("model"):
        return {}
    return {model: revision for model, revision in _announcements(events) if revision}


def watch_triggers(settings: dict, models: list[str], run_id: str,
                   revisions: dict[str, str] | None = None) -> dict[str, list[dict]]:
    """{"finetune": [...], "evaluate": [...]}: TriggerDagRunOperator kwargs (conf and a stable
    run id) per new model. With fine-tuning, the base is evaluated under the fine-tune's
    `experiment` (the fine-tune's `evaluate_base` is off), so that its epoch-0 scores start the
    checkpoints' lines on the leaderboard (board.epoch_series). `revisions` (watch_revisions):
    the commit each model was announced at, its evaluation's `revision` and its fine-tune's
    `base_revision`, so a repo deleted and created again (announced again) is evaluated in a run
    folder of its own, with its new weights, not in the first one's (`main`)."""
    from multiplt_pipelines.plans import run_id_for

    sampling = {k: settings[k] for k in SAMPLING_KEYS if k in settings}
    experiment = settings["experiment"] if settings.get("finetune_languages") else None
    out: dict[str, list[dict]] = {"finetune": [], "evaluate": []}
    for model in models:
        rid = lambda what: run_id_for(f"{run_id}__{what}__{model}")  # noqa: E731
        revision = (revisions or {}).get(model)
        out["evaluate"].append({"trigger_run_id": rid("evaluate"), "conf": {
            "model": model, "revision": revision, "tokenizer": None,
            "languages": list(settings["evaluate_languages"]), "experiment": experiment,
            "epoch": 0, **sampling}})
        if settings.get("finetune_languages"):
            out["finetune"].append({"trigger_run_id": rid("finetune"), "conf": {
                "base_model": model, "base_revision": revision,
                "languages": list(settings["finetune_languages"]),
                "experiment": settings["experiment"], "recipe": settings["recipe"],
                "dataset": settings["dataset"], "epochs": settings.get("epochs"),
                "evaluate_base": False, **sampling}})
    return out


RERUN_MODELS = _p([], "periodic (scheduled) runs: the models to evaluate, each a model name or "
                  "{model, revision, tokenizer, tokenizer_revision}; a Hub model or tokenizer "
                  "without its revision at its current commit; [] = nothing to rerun",
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
    `rerun_models` list for a scheduled run (or a manual run without `model`), one per entry in
    its order (with its `tokenizer_revision` where it gives one: no Param has it), else the
    model. Entries that mean one evaluation are found later, once each is pinned and named by
    its run folders (distinct_evaluations)."""
    if settings.get("model") and not scheduled:
        return [{}]
    targets: list[dict] = []
    for entry in settings.get("rerun_models") or []:
        entry = {"model": entry} if isinstance(entry, str) else dict(entry)
        if not entry.get("model"):
            raise ValueError(f"rerun_models entry {entry} names no model")
        targets.append({"model": entry["model"], "revision": entry.get("revision"),
                        "tokenizer": entry.get("tokenizer"),
                        **({"tokenizer_revision": entry["tokenizer_revision"]}
                           if entry.get("tokenizer_revision") is not None else {})})
    if not targets and not settings.get("model"):
        raise NothingToEvaluate("nothing to evaluate: no `model` and an empty `rerun_models`")
    return targets or [{}]


def distinct_evaluations(planned: list[tuple[int, dict, list[dict]]], warn=None) -> list[dict]:
    """The plan entries of a rerun's evaluations, given as (its `rerun_models` entry number, its
    run as evaluated: pinned to a commit, plans.rerun_revisions; its plans.evaluation_plan
    entries), leaving out, with a warning (`warn`; default: the task log), an evaluation whose
    run folders an earlier one writes: both would write one run folder, the second over the
    first, with the same results. So an entry repeats an earlier one however it is written: a
    name or {model}, a missing key or null, a Hub model and its current commit spelled out, a
    folder with and without a trailing `/`."""
    entries: list[dict] = []
    first: dict[tuple, int] = {}
    for number, run, plan in planned:
        folders = tuple(entry["run"] for entry in plan)
        if folders in first:
            _warn(warn, f"rerun_models entry {number} ({_described(run)}) repeats entry "
                        f"{first[folders]}: evaluated once (both would write one run folder)")
            continue
        first[folders] = number
        entries += plan
    return entries


def _described(target: dict) -> str:
    return ", ".join(f"{k} {target[k]!r}" for k in ("model", "revision", "tokenizer",
                                                     "tokenizer_revision") if target.get(k))


def _warn(warn, message: str) -> None:
    if warn is None:
        import logging

        warn = logging.getLogger("airflow.task").warning
    warn(message)
