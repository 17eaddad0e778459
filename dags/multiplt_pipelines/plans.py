"""The argv lists of one pipeline run, computed from its Params when the run starts.

Each list is one ``multiplt`` command line for one stage task (dynamic task mapping expands over
them). Storage layout under the ``[multiplt] data_uri`` root:

    benchmarks/<benchmark>-<lang>.jsonl              benchmark build (<benchmark>: `humaneval`,
                                                     or a path/URI source's file name and
                                                     _s<hash of the source>; then _first<N>/
                                                     _p<hash> for part of the source; named by
                                                     multiplt.benchmarks.sources.benchmark_name,
                                                     as `multiplt evaluate` names it)
    evaluate/<benchmark>-<lang>-<model>-<revision>-<temperature>/   run folder (generate,
                                                     execute, score; recorded in the store;
                                                     <benchmark> ends in _g<hash> for top_p/
                                                     max_new_tokens/backend/tokenizer off the
                                                     defaults, and a rerun's pinned tokenizer
                                                     revision)
    training/<base>-<experiment>-<lang>/             train output (manifest.jsonl, checkpoints/;
                                                     the `training_root` Param moves it; with a
                                                     `base_revision`, <base>@<revision>-...:
                                                     training_name; one dataset each: the plan
                                                     refuses another, TrainingOutputTaken)
"""

from __future__ import annotations


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def _safe(text: str) -> str:
    from multiplt.evaluation.run_folder import safe_part

    return safe_part(text)


#: generation settings a run folder records and `generate` refuses to mix, but the folder's name
#: does not spell out: a run that changes one gets a folder of its own (see settings_marker)
FOLDER_SETTINGS = ("top_p", "max_new_tokens", "backend", "tokenizer", "tokenizer_revision")


def settings_marker(params: dict) -> str:
    """`_g<hash>` of the FOLDER_SETTINGS that differ from the Params' defaults, else empty: so a
    re-evaluation with e.g. max_new_tokens 1024, or another tokenizer than the model's, gets its
    own folder instead of generate's refusal of the default run's folder, while runs at the
    defaults keep their folder names (and their hash: a default setting is not hashed). The
    tokenizer of a checkpoint's evaluation (checkpoint_run: a conf of checkpoint_confs) is the
    one its manifest row names for the checkpoint, so it is part of the checkpoint that the
    revision tag names: not hashed.
    `tokenizer_revision` (no Param: a rerun's, a `rerun_models` entry's or the commit hub_revision
    pinned a Hub tokenizer to; default none) is hashed when set, so a tokenizer whose default
    branch moved gets a folder of its own, as a model's moved `main` does (its revision is in the
    folder name)."""
    from multiplt_pipelines.params import EVALUATE

    changed = {k: params.get(k) for k in FOLDER_SETTINGS
               if params.get(k) != EVALUATE.get(k, {}).get("default")}
    if checkpoint_run(params):
        changed.pop("tokenizer", None)
    if not changed:
        return ""
    import hashlib
    import json

    return "_g" + hashlib.sha256(json.dumps(changed, sort_keys=True).encode()).hexdigest()[:8]


def checkpoint_run(params: dict) -> bool:
    """Whether the run evaluates a checkpoint of a training output as multiplt_finetune's confs
    do (checkpoint_confs): `checkpoint_uri` set and `revision` a checkpoint tag
    LANG-EXPERIMENT-epochN (checks.checkpoint refuses a `checkpoint_uri` with any other)."""
    import re

    from multiplt_pipelines.params import CHECKPOINT_TAG_PATTERN

    revision = params.get("revision")
    return bool(params.get("checkpoint_uri")) and isinstance(revision, str) and bool(
        re.search(CHECKPOINT_TAG_PATTERN, revision))


def score_ks(n: int) -> str:
    """pass@1 always; pass@10 and pass@100 where there are enough samples (as MultiPL-E)."""
    return ",".join(str(k) for k in (1, 10, 100) if k <= n)


#: multiplt_evaluate's settings whose empty string means not set (null). Their Params refuse ""
#: (TRIMMED_PATTERN, as Airflow checks a run's conf), but a value of the Airflow Variable or of a
#: `rerun_models` entry reaches the plan unchecked: "" there is null, not a revision "" (which
#: was hashed into the run folder's `_g` marker, or named the folder `main` while generate got
#: no --revision).
UNSET_WHEN_EMPTY = ("revision", "tokenizer")


def empty_as_unset(settings: dict) -> dict:
    """`settings` with each UNSET_WHEN_EMPTY key whose value is "" set to None (others as given;
    a key that is absent stays absent)."""
    return {**settings, **{key: None for key in UNSET_WHEN_EMPTY if settings.get(key) == ""}}


def evaluation_plan(params: dict, data_uri: str, results_store: str) -> list[dict]:
    """One entry per language of a `multiplt_evaluate` run: the command line of each of its
    stages (build, generate, score, record; execute: one per shard) and its run folder. A
    `revision` or `tokenizer` "" is none (empty_as_unset)."""
    from multiplt.benchmarks.sources import benchmark_name  # one naming with `multiplt evaluate`
    from multiplt.evaluation.run_folder import run_folder_name

    params = empty_as_unset(params)
    bench = benchmark_name(params["benchmark_source"], params.get("limit"), params.get("problems"))
    shards = int(params["shards"])
    entries = []
    for lang in params["languages"]:
        bench_uri = _join(data_uri, "benchmarks", f"{bench}-{lang}.jsonl")
        run = _join(data_uri, "evaluate", run_folder_name(bench + settings_marker(params), lang,
                                                          params["model"], params.get("revision"),
                                                          params["temperature"]))
        build = ["benchmark", "build", "--source", params["benchmark_source"], "--lang", lang,
                 "--out", bench_uri]
        if params.get("limit"):
            build += ["--limit", str(params["limit"])]
        if params.get("problems"):
            build += ["--problems", params["problems"]]
        generate = ["generate", "--benchmark", bench_uri, "--out", run, "--model", params["model"],
                    "--backend", params["backend"], "--n", str(params["n"]),
                    "--temperature", str(params["temperature"]), "--top-p", str(params["top_p"]),
                    "--max-new-tokens", str(params["max_new_tokens"])]
        # epoch 0 is the default: left out, generate labels a checkpoint of a training output
        # with its manifest's epoch (and refuses a contradicting --epoch), anything else as 0
        if params.get("epoch"):
            generate += ["--epoch", str(params["epoch"])]
        for key, flag in (("revision", "--revision"), ("tokenizer", "--tokenizer"),
                          ("tokenizer_revision", "--tokenizer-revision"),
                          ("experiment", "--experiment"), ("api_base", "--api-base")):
            if params.get(key):
                generate += [flag, str(params[key])]
        if params.get("replay_source"):
            generate += ["--replay-source", params["replay_source"].replace("{lang}", lang)]
        # the experiment goes to the record too: the folder of a base model is shared by the
        # experiments that evaluate it, and when it is complete generate rewrites nothing, so its
        # run file keeps the first experiment's label
        record = ["results", "record", "--scores", run, "--store", results_store]
        if params.get("experiment"):  # not --epoch: a scheduled rerun of a checkpoint has epoch 0
            record += ["--experiment", params["experiment"]]
        entries.append({
            "lang": lang,
            "model": params["model"],
            "revision": params.get("revision"),
            "run": run,
            "build": build,
            "generate": generate,
            "execute": [["execute", "--in", run, "--shard", f"{k}/{shards}"] for k in range(shards)],
            "score": ["score", "--in", run, "-k", score_ks(int(params["n"]))],
            "record": record,
        })
    return entries


def revision_part(revision: str) -> str:
    """`revision` as the `@<revision>` of a training output's name: a full commit sha (40 or 64
    hex digits) as its first 12, any other (a branch, a tag, a short sha) as it is when that is
    a safe part (_safe) of at most 20 characters and not 12 hex digits (which a full sha's would
    be); else its first 12 safe characters, `_` and 8 hex digits of the sha256 of `revision`, so
    that two revisions never share a name (`refs/pr/1`, `refs_pr_1`; two long branches of one
    beginning), and never a literal one (21 characters)."""
    import hashlib
    import re

    if re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", revision):
        return revision[:12]
    safe = _safe(revision)
    if safe == revision and len(revision) <= 20 and not re.fullmatch(r"[0-9a-f]{12}", revision):
        return revision
    return f"{safe[:12]}_{hashlib.sha256(revision.encode()).hexdigest()[:8]}"


def training_name(base_model: str, base_revision: str | None, experiment: str, lang: str) -> str:
    """The folder of a fine-tune's output under the training root: `<base>-<experiment>-<lang>`
    (the base made safe: `bigcode_starcoderbase_1b-multiplt-lua`), and with a `base_revision`
    `<base>@<revision>-<experiment>-<lang>` (revision_part): `multiplt train` resumes a folder
    only with the settings it was started with, so the same base at another revision (a manual
    run, or multiplt_watch's fine-tune of a moved or re-created repo) needs a folder of its own.
    Runs without a base_revision keep the name they always had, so their outputs resume."""
    base = _safe(base_model)
    if base_revision:
        base += "@" + revision_part(base_revision)
    return "-".join([base, experiment, lang])


def started_revision(out: str) -> str | None:
    """The `base_revision` of the training run under `out` (its `_multiplt_train.yaml`, read as
    `multiplt train` reads it; "" for a run on the default branch), None when no run is there or
    its config is no run config."""
    from multiplt.errors import MultipltError, PlatformError
    from multiplt.training.checkpoint import read_run_config

    try:
        run = read_run_config(out)
    except PlatformError:
        # a storage error (S3 unreachable, 503) propagates, so the task retries rather than plan
        # the new folder and train again from epoch 1
        raise
    except MultipltError:  # no YAML, or no `config` mapping: no run to resume there
        return None
    return None if run is None else (run.get("config", {}).get("base_revision") or "")


class TrainingOutputTaken(ValueError):
    """A language's training output holds checkpoints of a fine-tune on another dataset: the plan
    refuses it (the task fails, no retry) before `train` takes the GPU, which `multiplt train`
    would refuse with exit 2, suggesting an --out that a DAG run cannot set."""


def trained_dataset(out: str) -> dict | None:
    """What the fine-tune under `out` has checkpointed: {"dataset": the dataset its run config
    (`_multiplt_train.yaml`, read as `multiplt train` reads it) names, "tags": its manifest's
    checkpoint tags}; None when the manifest lists no checkpoint (`multiplt train` starts such an
    output anew, whatever its run config says), or when the manifest or run config cannot be read
    as one or names no dataset (`train` reports those itself). A storage error (PlatformError)
    propagates, so the plan task retries rather than let `train` find out on the GPU."""
    from multiplt.errors import MultipltError, PlatformError
    from multiplt.storage import manifest
    from multiplt.training.checkpoint import read_run_config

    try:
        rows = manifest.read(out)
        run = read_run_config(out) if rows else None
    except PlatformError:
        raise
    except MultipltError:  # a malformed manifest or run config: train names it
        return None
    dataset = ((run or {}).get("config") or {}).get("dataset")
    if not isinstance(dataset, str) or not dataset:
        return None
    return {"dataset": dataset, "tags": [row["tag"] for row in rows]}


def dataset_place(dataset: str) -> str:
    """`dataset` as `multiplt train` compares it with the one a run config records: a local
    path made absolute as train makes it (absolute_refs), then a place (`/x/d`, `file:///x/d`
    and `/x/d/` are one); a Hub name as written."""
    from multiplt.errors import MultipltError
    from multiplt.training.config import TrainConfig, _same_place, absolute_refs

    config = TrainConfig(dataset=dataset)
    try:
        absolute_refs(config)
    except MultipltError:  # a mistyped URI: train refuses it with its own message
        pass
    return _same_place(config.dataset)


def taken_message(params: dict, taken: list[tuple[str, str, dict, str]]) -> str:
    """The plan's refusal of the outputs in `taken` ([(lang, out, trained_dataset(out), this
    run's dataset)]): each output with both datasets and its checkpoints, then the fix."""
    outputs = "; ".join(
        f"{out} holds {lang} checkpoints {', '.join(there['tags'])} trained on {there['dataset']}, "
        f"not on this run's dataset {dataset}" for lang, out, there, dataset in taken)
    experiment = params["experiment"]
    return (f"cannot train {', '.join(lang for lang, *_ in taken)}: {outputs}. A training output "
            f"belongs to one base, experiment ({experiment!r}) and language, and is resumed only "
            "on the dataset it started with (`multiplt train` would refuse it); its checkpoints' "
            f"tags (LANG-{experiment}-epochN) would be this run's too. Set another `experiment` "
            "(for runs started by dataset events, the key `experiment` of the Airflow Variable "
            "multiplt_finetune; for multiplt_watch's, that of the Variable multiplt_watch; else "
            "the run's conf), so this training gets an output and checkpoint tags of its own; or "
            "another `training_root` (its checkpoints then have the same tags as those above: "
            "publish them to another checkpoints_repo)")


def training_plan(params: dict, data_uri: str, started=None, trained=None) -> list[dict]:
    """One entry per language of a `multiplt_finetune` run: its `train` command line and output.
    `params["datasets"]` ({lang: URI}, from the triggering dataset events) overrides `dataset`.
    `started(out)`: the `base_revision` the run already under `out` records (None: no run
    there); with a `base_revision`, a run begun in the plain `<base>-<experiment>-<lang>` folder
    (before revisions got folders of their own) at that revision is resumed there, not begun
    again in the `@<revision>` folder.
    `trained(out)`: what the output already holds (trained_dataset); an output with checkpoints
    of another dataset (a second corpus under the same experiment, its run finished or not) is
    refused for every language at once, TrainingOutputTaken naming each output, both datasets
    and the fix, before any `train` takes the GPU."""
    entries, taken = [], []
    datasets = params.get("datasets") or {}
    root = params.get("training_root") or _join(data_uri, "training")
    revision = params.get("base_revision")
    for lang in params["languages"]:
        out = _join(root, training_name(params["base_model"], revision, params["experiment"], lang))
        if revision and started is not None:
            plain = _join(root, training_name(params["base_model"], None, params["experiment"], lang))
            if started(plain) == revision:
                out = plain
        dataset = datasets.get(lang) or params["dataset"].replace("{lang}", lang)
        if trained is not None:
            there = trained(out)
            if there is not None and dataset_place(there["dataset"]) != dataset_place(dataset):
                taken.append((lang, out, there, dataset))
        argv = ["train", "--recipe", params["recipe"], "--base", params["base_model"],
                "--lang", lang, "--experiment", params["experiment"],
                "--dataset", dataset, "--out", out]
        if params.get("base_revision"):
            argv += ["--base-revision", params["base_revision"]]
        if params.get("epochs"):
            argv += ["--epochs", str(params["epochs"])]
        entries.append({"lang": lang, "out": out, "dataset": dataset, "train": argv})
    if taken:
        raise TrainingOutputTaken(taken_message(params, taken))
    return entries


SAMPLING_KEYS = ("benchmark_source", "n", "temperature", "top_p", "max_new_tokens", "backend",
                 "limit", "problems", "shards", "replay_source")


def checkpoint_confs(params: dict, manifests: list[dict]) -> list[dict]:
    """One `multiplt_evaluate` conf per checkpoint of the training manifests, each naming its
    checkpoint explicitly (model = the training output, revision = the checkpoint's tag), plus
    the base model at epoch 0 when asked. `manifests`: [{"lang", "out", "rows"}].

    Raises ValueError when a manifest is empty or a row does not belong to its training run: a
    checkpoint must never be replaced by a default."""
    from multiplt.storage.manifest import other_tokenizer

    sampling = {key: params[key] for key in SAMPLING_KEYS if key in params}
    confs = []
    if params.get("evaluate_base", True):
        # "" (which the base_revision Param refuses now, but settings resolved before that
        # check may hold) is the default branch, as training_plan reads it: the evaluation's
        # `revision` Param refuses ""
        confs.append({"model": params["base_model"],
                      "revision": params.get("base_revision") or None, "tokenizer": None,
                      "languages": [m["lang"] for m in manifests], "experiment": params["experiment"], "epoch": 0, **sampling})
    for manifest in manifests:
        if not manifest["rows"]:
            raise ValueError(f"training output {manifest['out']} has no checkpoints in its manifest")
        for row in manifest["rows"]:
            missing = [k for k in ("uri", "tag", "lang", "epoch", "experiment") if row.get(k) in (None, "")]
            if missing:
                raise ValueError(f"{manifest['out']}/manifest.jsonl row {row} lacks {missing}")
            if row["lang"] != manifest["lang"] or row["experiment"] != params["experiment"]:
                raise ValueError(f"{manifest['out']}/manifest.jsonl row {row['tag']} is for "
                                 f"{row['lang']}/{row['experiment']}, not "
                                 f"{manifest['lang']}/{params['experiment']}")
            # the checkpoint's own tokenizer (newer rows name the checkpoint) is the default
            confs.append({"model": manifest["out"], "revision": row["tag"],
                          "tokenizer": other_tokenizer(row), "languages": [row["lang"]],
                          "experiment": row["experiment"], "epoch": int(row["epoch"]),
                          "checkpoint_uri": row["uri"], **sampling})
    return confs


def run_id_for(text: str) -> str:
    """`text` as a run id: as it is when it is one already (safe characters, at most 240), else
    made safe and cut, with a hash of `text` at the end so that two texts that differ only in
    the characters made safe (`ns/m-2`, `ns/m_2`) or past the cut never share a run id (a
    trigger that finds the other's run would skip its own)."""
    import hashlib

    safe = _safe(text)
    if safe == text and len(text) <= 240:
        return text
    return safe[:229] + "_" + hashlib.sha1(text.encode()).hexdigest()[:10]


def trigger_run_id(parent_run_id: str, conf: dict) -> str:
    """A stable run id per evaluation, so a retried trigger finds its run instead of adding one."""
    what = conf["revision"] if conf["epoch"] else f"base-{conf['model']}"
    return run_id_for(f"{parent_run_id}__{what}")


class HubLookupFailed(Exception):
    """The Hub could not say which commit a rerun evaluates. `retry`: asking again later may
    succeed (the Hub down or unreachable, a timeout, HTTP 429 or 5xx: the task is retried, as
    a stage's exit 3 is); else it cannot (HF_HUB_OFFLINE is set: the task fails, no retry)."""

    def __init__(self, message: str, retry: bool):
        super().__init__(message)
        self.retry = retry


def hub_model(run: dict) -> bool:
    """Whether `generate` would download the run's `model` from the Hub: a Hub repo id with a
    backend that loads it (transformers, vllm; the openai and replay backends' names are
    labels), as checks.model_kind tells them apart from URIs, local paths and mistyped URIs."""
    from multiplt_pipelines.checks import model_kind

    return model_kind(run.get("model"), run.get("backend")) == "hub"


def hub_tokenizer(run: dict) -> bool:
    """Whether `generate` would download the run's `tokenizer` from the Hub: a Hub repo id (as
    checks.model_kind tells a Hub-loading backend's model apart from URIs, local paths and
    mistyped URIs) with any backend but replay, which loads no tokenizer (openai loads one for
    its special ids)."""
    from multiplt_pipelines.checks import model_kind

    return run.get("backend") != "replay" and model_kind(run.get("tokenizer"), "transformers") == "hub"


def hub_revision(run: dict, token: str | None = None) -> tuple[dict | None, str | None, tuple]:
    """The run of a Hub model (hub_model) as a rerun evaluates it, asking the Hub (HF_ENDPOINT)
    once: without a `revision`, pinned to the commit its default branch is at now (`revision` =
    that commit's sha), so that a moved `main` gets a run folder of its own (generate resumes a
    folder without loading the model when every completion is there, so the old folder would
    give the old scores again) and the results name the commit evaluated; with one, as given,
    once the Hub has it. A Hub `tokenizer` (hub_tokenizer) is pinned the same way: its
    `tokenizer_revision` (generate's --tokenizer-revision) is the commit its default branch is
    at now, or the one given once the Hub has it; so every generate of the run, and its
    identity, name one tokenizer version, whatever backend loads the model. Any other run is
    returned as it is (a local folder, a storage URI, a training output and its checkpoint tag).

    Returns (the run pinned, None, ()), or (None, why it cannot be evaluated, the keys refused:
    `("model",)`, `("model", "revision")` or `("tokenizer",)`): the repo or revision is not on
    the Hub (or is private and no token is set here), or the model's commit holds no config.json
    (no model), or it is a gated repo the token has no access to (the Hub's auth-check,
    multiplt.hub.access: model_info answers also without access), or the Hub refused (HTTP 4xx).
    The why begins with the repo it is about (`'org/m': ...`, `'org/tok': ...`): rerun_revisions
    says whose.

    Raises HubLookupFailed when the Hub cannot be asked: retry for a Hub that is down or
    unreachable; no retry with HF_HUB_OFFLINE set, unless the run pins a revision (its commit
    cannot move; generate reads it from the cache)."""
    pinned, why = _hub_model_revision(run, token)
    if pinned is None:
        return None, why, ("model", "revision") if run.get("revision") else ("model",)
    pinned, why = _hub_tokenizer_revision(pinned, token)
    return (pinned, None, ()) if pinned is not None else (None, why, ("tokenizer",))


def _hub_model_revision(run: dict, token: str | None) -> tuple[dict | None, str | None]:
    """hub_revision for the run's model alone."""
    if not hub_model(run):
        return run, None
    model, revision = run["model"], run.get("revision")
    info, why = _hub_info(model, revision, token, repr(model), "model", "revision")
    if info is None:
        return (run, None) if why is None else (None, why)
    files = [sibling.rfilename for sibling in info.siblings or []]
    if info.siblings is not None and "config.json" not in files:
        return None, (f"{model!r} at {revision or 'its default branch'} (commit {info.sha}) "
                      f"holds no model: no config.json")
    return {**run, "revision": revision or info.sha}, None


def _hub_tokenizer_revision(run: dict, token: str | None) -> tuple[dict | None, str | None]:
    """hub_revision for the run's tokenizer alone, the why naming the tokenizer."""
    if not hub_tokenizer(run):
        return run, None
    tokenizer, revision = run["tokenizer"], run.get("tokenizer_revision")
    info, why = _hub_info(tokenizer, revision, token, f"tokenizer {tokenizer!r}", "tokenizer",
                          "tokenizer_revision")
    if info is None:
        return (run, None) if why is None else (None, why)
    return {**run, "tokenizer_revision": revision or info.sha}, None


def _hub_info(repo: str, revision: str | None, token: str | None, named: str, kind: str,
              key: str):
    """(model_info of `repo` at `revision`, None), or (None, why it cannot be used: as `repo!r`
    begins it), or (None, None) with HF_HUB_OFFLINE set and a `revision` given (it cannot move:
    generate reads it from the cache). `named`: `repo` as the messages name it; `kind` (model or
    tokenizer) and `key` (the setting that pins it) word the offline refusal. Raises
    HubLookupFailed as hub_revision says."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import (OfflineModeIsEnabled, RepositoryNotFoundError,
                                        RevisionNotFoundError)
    from multiplt.hub.access import gated_reason, not_found

    where = f"the Hub ({constants.ENDPOINT})"
    try:
        info = HfApi(token=token).model_info(repo, revision=revision)
    except OfflineModeIsEnabled:
        if revision:
            return None, None
        raise HubLookupFailed(
            f"HF_HUB_OFFLINE is set: cannot ask {where} which commit of {named} to evaluate "
            f"(a rerun evaluates an unpinned Hub {kind} at its current commit); give its "
            f"`{key}` (a commit), or unset HF_HUB_OFFLINE", retry=False) from None
    except RevisionNotFoundError:
        return None, f"{repo!r}: revision {revision!r} not found on {where}"
    except RepositoryNotFoundError:
        return None, not_found(repo, where, token)
    except Exception as exc:  # noqa: BLE001 - classified as the Hub commands classify it
        return None, _refusal(exc, f"cannot ask {where} which commit of {named} to evaluate",
                              f"{repo!r}: {where} refused to describe it")
    if getattr(info, "gated", None):  # model_info describes a gated repo to anyone
        try:
            denied = gated_reason(repo, token)
        except Exception as exc:  # noqa: BLE001 - classified as model_info's failures are
            return None, _refusal(exc, f"cannot ask {where} whether the token may read {repo!r}",
                                  f"{repo!r}: {where} refused the access check")
        if denied:
            return None, denied
    return info, None


def _refusal(exc: Exception, cannot_ask: str, refused: str) -> str:
    """A failed Hub request of hub_revision, classified as the Hub commands classify it: one that
    asking again later may answer (the Hub down or unreachable, a timeout, HTTP 429 or 5xx)
    raises HubLookupFailed with retry (`cannot_ask`, the cause, "the task is retried"); any
    other (HTTP 4xx) is why the run cannot be evaluated (`refused` and the cause), returned."""
    from multiplt.hub.retry import describe, is_retryable

    if is_retryable(exc):
        raise HubLookupFailed(f"{cannot_ask} ({describe(exc)}); the task is retried",
                              retry=True) from None
    return f"{refused} ({describe(exc)})"


def rerun_revisions(runs: list[dict], listed: list[bool], *, drop: bool, token: str | None = None,
                    warn=print, source: str = "") -> list[tuple[int, dict]]:
    """The runs of a rerun (a scheduled run, or one started by hand without `model`), each
    checked on the Hub and pinned to a commit, its Hub tokenizer too (hub_revision). `listed[i]`:
    runs[i] is an entry of `rerun_models` (else the run's `model`). A run that cannot be
    evaluated is, with `drop` (a scheduled run: a typo'd, deleted or private model must not keep
    the others from being scored, as its failed generate would), left out with a warning
    (`warn`) naming it and why (a tokenizer's: `'org/m': tokenizer 'org/tok' ...` in an entry,
    else `Param tokenizer: ...`);
    checks.BadParams when none is left. Without `drop` (a run started by hand, whose user is
    there to fix it) BadParams at once. `source`: appended to the warnings (which Variable the
    list came from). Returns (its number in `runs`, from 1: its rerun_models entry's; the run
    pinned) of each run kept. HubLookupFailed as hub_revision raises it."""
    from multiplt_pipelines.checks import BadParams

    kept, left_out, keys = [], [], []
    for number, (run, entry) in enumerate(zip(runs, listed), 1):
        pinned, why, key = hub_revision(run, token)
        if pinned is not None:
            kept.append((number, pinned))
            continue
        if entry and key == ("tokenizer",):  # the entry is named by its model
            why = f"{run['model']!r}: tokenizer {why}"
        why = f"rerun_models entry {why}" if entry else f"Param {key[0]}: {why}"
        key = ["rerun_models"] if entry else list(key)
        if not drop:
            raise BadParams(why, key)
        left_out.append(why)
        keys += [k for k in key if k not in keys]
    if left_out and not kept:
        raise BadParams(f"nothing to evaluate: {'; '.join(left_out)}", keys)
    for why in left_out:
        warn(f"left out of this run: {why}; the {len(kept)} other model(s) are evaluated{source}")
    return kept
