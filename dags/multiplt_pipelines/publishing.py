"""Params and plans of `multiplt_publish` (pure functions, no I/O), and the settings
precedence its DAG shares with `multiplt_watch` and `multiplt_evaluate`'s reruns (scheduled, or
started by hand without `model`): Param defaults <- the Airflow Variable named after the DAG (a
JSON object) <- the run's conf. Asset-triggered and scheduled runs have no conf, so the
Variable is where a deployment says what to publish (and, for the others, what to run).
"""

from __future__ import annotations

from multiplt_pipelines.chain import (DATASET_ASSET_PREFIX, RESULTS_ASSET,  # noqa: F401 (the DAGs' names)
                                      asset_events)
from multiplt_pipelines.params import _p


PUBLISH = {
    "dataset_repo": _p(None, "Hub dataset repo OWNER/NAME for datasets (null = do not publish "
                       "datasets)", type=["null", "string"]),
    "checkpoints_repo": _p(None, "Hub model repo for checkpoints; `{base}` is replaced by the base "
                           "model's id with its owner (`bigcode/starcoderbase-1b` -> "
                           "`bigcode__starcoderbase-1b`), so each base model gets a repo of its own "
                           "(null = do not publish checkpoints)", type=["null", "string"]),
    "results_repo": _p(None, "Hub dataset repo for the results store (null = do not publish "
                       "results)", type=["null", "string"]),
    "tags": _p("all", "checkpoints to publish: all, best, or comma-separated tags", type="string",
               minLength=1),
    "private": _p(False, "create new repos private", type="boolean"),
    "dataset_uri": _p(None, "a manual run: the dataset folder to publish (else the dataset "
                      "Asset events')", type=["null", "string"]),
    "training_outputs": _p(None, "a manual run: training outputs to publish (else the checkpoints "
                           "Asset events')", type=["null", "array"], items={"type": "string"}),
    "dry_run": _p(None, "a local folder: write each dataset publication there "
                  "(`multiplt publish dataset --dry-run`, one subfolder per dataset folder) and "
                  "send nothing, no token needed; checkpoints and results have no dry-run form and "
                  "are skipped (null = publish to the Hub)", type=["null", "string"]),
    "force": _p(False, "a manual run: publish the dataset even where dataset_repo (or the dry_run "
                "folder) holds another source folder's dataset, replacing its splits (multiplt "
                "publish dataset --force; without it that publication fails, exit 2, nothing "
                "uploaded); datasets only, never checkpoints' tags; only a manual run's conf sets "
                "it: an Asset-triggered run never forces, and true in the Airflow Variable is "
                "refused", type="boolean"),
}

class NotPublishing(Exception):
    """This publication is off for this run; the message says why (the task is skipped)."""


def effective(params: dict, conf: dict | None, variable: dict | None) -> dict:
    """Param values, with the Variable's values for keys the run's conf did not set. A Variable
    key that is no Param is left out here: the callers refuse it first (checks.known_keys)."""
    conf = conf or {}
    out = dict(params)
    for key, value in (variable or {}).items():
        if key in params and key not in conf:
            out[key] = value
    return out


def refuse_variable_force(settings: dict, from_variable) -> None:
    """`force` comes from a manual run's conf only: the Airflow Variable's settings are every
    Asset-triggered run's, and such a run must never replace another folder's dataset. BadParams
    when the Variable sets it true (`from_variable`: chain.run_settings' keys; a value that is no
    boolean is the schema's to refuse)."""
    from multiplt_pipelines.checks import BadParams

    if "force" in (from_variable or ()) and settings.get("force") is True:
        raise BadParams("Param force: true replaces another source folder's dataset, which only a "
                        "manual run's conf may ask for (an Asset-triggered run never forces): "
                        "remove it", ["force"])


def dataset_commands(settings: dict, events: list[dict]) -> list[list[str]]:
    """The `multiplt publish dataset` command of each dataset folder: `dataset_uri` (a manual
    run), else those of the dataset Asset `events`. `--force` only for a manual run (no events)
    whose conf sets `force`: an Asset-triggered run never forces."""
    repo = settings.get("dataset_repo")
    if not repo:
        raise NotPublishing("not publishing datasets: dataset_repo is not set (Param or the "
                            "multiplt_publish Variable)")
    uris = [settings["dataset_uri"]] if settings.get("dataset_uri") else sorted({
        (e["extra"] or {}).get("dataset_uri") or e["uri"] for e in events
        if e["name"].startswith(DATASET_ASSET_PREFIX)})
    if not uris:
        raise NotPublishing("no dataset to publish: no dataset Asset event and no dataset_uri")
    flags = ["--private"] if settings.get("private") else []
    if settings.get("force") is True and not events:
        flags.append("--force")
    dry = settings.get("dry_run")
    _one_folder_per_repo(repo, uris, dry)

    def command(uri: str) -> list[str]:
        base = ["publish", "dataset", "--from", uri, "--repo", repo, *flags]
        return base + ["--dry-run", dry.rstrip("/") + "/" + _base_name(uri)] if dry else base
    return [command(uri) for uri in uris]


def _one_folder_per_repo(repo: str, uris: list[str], dry: str | None) -> None:
    """A dataset repo holds one folder's publication: `publish dataset` deletes the repo's `data/`
    files that its folder lacks, so two folders published to one repo delete each other's splits
    (and so would two into one dry-run folder, `<dry_run>/<folder's name>`). BadParams (the run
    fails, nothing is published) when this run would do that."""
    from multiplt_pipelines.checks import BadParams

    if dry:
        targets: dict[str, list[str]] = {}
        for uri in uris:
            targets.setdefault(_base_name(uri), []).append(uri)
        clash = next((given for given in targets.values() if len(given) > 1), None)
        if clash:
            raise BadParams(f"Param dry_run: the dataset folders {', '.join(clash)} would be written "
                            f"to one dry-run folder ({dry.rstrip('/')}/{_base_name(clash[0])}), each "
                            f"removing the other's splits; run them one at a time (dataset_uri)",
                            ["dry_run"])
        return
    if len(uris) > 1:
        raise BadParams(f"Param dataset_repo: this run would publish {len(uris)} dataset folders "
                        f"({', '.join(uris)}) to {repo}, and each publication deletes the splits of "
                        f"the others (a dataset repo holds one folder); publish each by hand with "
                        f"dataset_uri and a dataset_repo of its own", ["dataset_repo"])


def _no_dry_run(settings: dict, what: str) -> None:
    if settings.get("dry_run"):
        raise NotPublishing(f"not publishing {what}: dry run (dry_run={settings['dry_run']}), and "
                            f"`multiplt publish {what}` has no dry-run form")


def _base_name(base: str) -> str:
    """`s3://b/runs/ds` -> `ds`: a folder's last name (characters a repo name may hold)."""
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", base.rstrip("/").rsplit("/", 1)[-1]).strip("_.-") or "model"


def base_repo_name(base: str) -> str:
    """What `{base}` in checkpoints_repo becomes: the base model's id with its owner,
    `bigcode/starcoderbase-1b` -> `bigcode__starcoderbase-1b`, so that two bases of one name
    under two owners (`a/x`, `b/x`) get two repos; a path or URI gives its last two parts
    (`s3://b/training/lua` -> `training__lua`). Only characters a repo name may hold, and no
    `--` or `..` (which the Hub refuses)."""
    import re

    parts = [p for p in base.split("://", 1)[-1].split("/") if p][-2:]
    clean = [re.sub(r"[^A-Za-z0-9._-]+", "_", p) for p in parts]
    clean = [re.sub(r"\.{2,}", ".", re.sub(r"-{2,}", "-", p)).strip("_.-") for p in clean]
    return "__".join(p for p in clean if p) or "model"



def existing_store(results_store: str) -> str | None:
    """The results store when it exists (reads storage: call it in a task), else None: a
    deployment that has evaluated nothing yet publishes its checkpoints without pass@1, while
    `multiplt publish checkpoints` refuses a --results-store that does not exist."""
    from multiplt import storage

    return results_store if storage.exists(results_store) else None


def checkpoint_commands(settings: dict, events: list[dict], results_store: str | None) -> list[list[str]]:
    """One command per target repo (all its training outputs in one command, so that commits to
    one repo never race); `results_store` None: no --results-store (existing_store)."""
    template = settings.get("checkpoints_repo")
    if not template:
        raise NotPublishing("not publishing checkpoints: checkpoints_repo is not set (Param or the "
                            "multiplt_publish Variable)")
    _no_dry_run(settings, "checkpoints")
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
            from multiplt_pipelines.checks import BadParams

            raise BadParams(f"Param checkpoints_repo: {template!r} needs the base model, which a "
                            f"manual run's training_outputs do not give; use a plain OWNER/NAME",
                            ["checkpoints_repo"])
        repo = template.replace("{base}", base_repo_name(base)) if base else template
        by_repo.setdefault(repo, [])
        if out not in by_repo[repo]:
            by_repo[repo].append(out)
    private = ["--private"] if settings.get("private") else []
    store = ["--results-store", results_store] if results_store else []
    return [["publish", "checkpoints", *[a for out in outs for a in ("--from", out)], "--repo", repo,
             "--tags", settings.get("tags") or "all", *store, *private]
            for repo, outs in sorted(by_repo.items())]


def results_commands(settings: dict, events: list[dict], results_store: str) -> list[list[str]]:
    repo = settings.get("results_repo")
    if not repo:
        raise NotPublishing("not publishing results: results_repo is not set (Param or the "
                            "multiplt_publish Variable)")
    _no_dry_run(settings, "results")
    if events and not any(e["name"] == RESULTS_ASSET for e in events):
        raise NotPublishing("no results event in this run: the results store did not change")
    private = ["--private"] if settings.get("private") else []
    return [["publish", "results", "--store", results_store, "--repo", repo, *private]]
