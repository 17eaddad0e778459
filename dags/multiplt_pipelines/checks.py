"""What a stage command would refuse in a run's settings, refused by the run's first task
(`plan`, `settings` in multiplt_finetune) before any stage runs. Nothing here reads storage or
the Hub (only whether a bare name is a local path, and, on the local runtime, whether a local
model folder exists): a source, or a model on the Hub or in object storage, that does not
exist is the stage's to report.

Airflow checks each Param alone against its JSON schema when a run is triggered, and lets any
other key of the run's conf through into its params, where nothing reads it. These checks cover
the rest: a key of the conf or of the Airflow Variable that is no Param of the DAG (a misspelled
`limt` would run the full job), a relative local path (a stage would read it from its working
folder, AIRFLOW_HOME), a local model folder that does not exist (local runtime only), a local
path outside the folders the docker runtime's stage containers mount (docker runtime only), a
value that needs another Param (the replay backend's `replay_source`, the
openai backend's `api_base`), a benchmark source, a Hub repo id, a recipe name, a language the
dataset has no split for, one Hub dataset repo for two publications (which would delete each
other's files); and values taken from an Airflow Variable (scheduled and Asset-
triggered runs), which Airflow never validates. They call the commands' own validation, so the
message is the command's; the DAG fails the task with it (`BadParams`; no retry).
"""

from __future__ import annotations

import contextlib
import os

from multiplt.errors import MultipltError

#: backends that load `model` by name (multiplt.generation.model_source): a Hub id is downloaded
HUB_BACKENDS = ("transformers", "vllm")

#: why a relative local path is refused: the stage commands run in the task's working folder
RELATIVE = ("give an absolute path or a URI; a relative path would be read from the task's "
            "working folder (AIRFLOW_HOME)")


class BadParams(ValueError):
    """A setting a stage command would refuse; the message names the Params and the problem,
    `keys` the Params whose values are refused (variable_source names the Variable's)."""

    def __init__(self, message: str, keys=()):
        super().__init__(message)
        self.keys = tuple(keys)


@contextlib.contextmanager
def variable_source(from_variable, variable_name: str):
    """BadParams raised inside, of a value taken from the Airflow Variable `variable_name` (its
    keys `from_variable`: chain.run_settings), says so at its end: `... (from the Airflow
    Variable multiplt_translate)`, or with the keys when only some of those refused came from it
    (`(backend from the Airflow Variable ...)`); a user who finds nothing wrong in the run's conf
    and Params looks there. Other refusals pass as they are."""
    try:
        yield
    except BadParams as exc:
        variable_keys = set(from_variable or ())
        ours = [key for key in exc.keys if key in variable_keys]
        if not ours:
            raise
        which = "" if len(ours) == len(exc.keys) else ", ".join(ours) + " "
        raise BadParams(f"{exc} ({which}from the Airflow Variable {variable_name})",
                        exc.keys) from None


@contextlib.contextmanager
def _refused(what: str, keys, errors: tuple[type[Exception], ...] = (MultipltError,)):
    """A command's validation error as BadParams naming `what` (the Params involved: `keys`)."""
    try:
        yield
    except errors as exc:
        raise BadParams(f"{what}: {exc}", keys) from None


def known_keys(given: dict | None, names, dag_id: str, where: str = "conf") -> None:
    """Every key of `given` (a run's conf, or the Airflow Variable named after the DAG: `where`
    says which) must be a Param of `dag_id` (`names`): Airflow adds any other conf key to the
    run's params, where nothing reads it, so a misspelled key would run the full job."""
    import difflib

    if given is None:
        return
    if not isinstance(given, dict):
        raise BadParams(f"{where} must be a JSON object of Params of {dag_id}, not "
                        f"{type(given).__name__} {given!r}")
    names = sorted(names)
    for key in given:
        if key not in names:
            near = difflib.get_close_matches(str(key), names, n=1)
            hint = f"did you mean {near[0]!r}?" if near else f"its Params: {', '.join(names)}"
            raise BadParams(f"{where} key {key!r} is not a Param of {dag_id} ({hint})")


def _relative(value) -> bool:
    """A bare local path that is not absolute (no `scheme://`; a value that reads as a mistyped
    URI is left to the command, which refuses it with its hint)."""
    from multiplt.storage.uri import mistyped

    return (isinstance(value, str) and bool(value.strip()) and "://" not in value
            and not os.path.isabs(value) and mistyped(value) is None)


def _refuse_relative(key: str, value: str) -> None:
    raise BadParams(f"Param {key}: {value!r} is a relative path: {RELATIVE}", [key])


def stage_roots() -> list[str] | None:
    """The host folders the docker runtime's stage containers mount, the only ones a stage sees
    there (multiplt_airflow.docker_stage.file_roots of the `[multiplt]` settings: the data root
    and the results store's folder, where local); None on the local runtime, whose stages run
    where this task runs and see every folder."""
    from multiplt_airflow import settings as multiplt_settings

    settings = multiplt_settings.load()
    if settings.runtime != "docker":
        return None
    from multiplt_airflow.docker_stage import file_roots

    try:
        return file_roots(settings)
    except MultipltError as exc:  # a data root in /tmp, ...: the DAG's stages refuse it too
        raise BadParams(str(exc)) from None


def _host_path(value) -> str | None:
    """The local path an absolute path or a local storage URI (file://) names; None for
    anything else (a relative path, a Hub name, s3://, a URI the command refuses itself)."""
    if not isinstance(value, str):
        return None
    if "://" in value:
        from multiplt.storage.uri import local_path

        try:
            return local_path(value)
        except MultipltError:
            return None
    return value if os.path.isabs(value) else None


def mounted(key: str, value) -> None:
    """On the docker runtime, an absolute local path or a file:// URI must be in a folder the
    stage containers mount (stage_roots): any other host folder is not there, so a stage would
    fail late (`--source ... does not exist` while the folder is on the host), or write into a
    container that is removed when it ends. `{lang}` stands for any language code."""
    path = _host_path(value.replace("{lang}", "lua") if isinstance(value, str) else value)
    if path is None:
        return
    roots = stage_roots()
    if roots is None:
        return
    from multiplt_airflow.docker_stage import mounted as in_roots

    if not in_roots(path, roots):
        where = (f"only {', '.join(roots)}" if roots else
                 "no host folder ([multiplt] data_uri and results_store are not local)")
        raise BadParams(f"Param {key}: {value!r} is not in a folder the docker runtime's stage "
                        f"containers see (they mount {where}); put it under one of them, or "
                        "give a storage URI such as s3://...", [key])


def paths(settings: dict, keys, staged: bool = True) -> None:
    """Params that always name a local path or a storage URI (a string, or a list of them): a
    relative local path is refused, and, when a stage reads or writes it (`staged`), one that
    the docker runtime's stage containers would not see (mounted)."""
    for key in keys:
        value = settings.get(key)
        for item in value if isinstance(value, list) else [value]:
            if _relative(item):
                _refuse_relative(key, item)
            if staged:
                mounted(key, item)


def _named_path(value: str) -> bool:
    """A relative value of a Param that takes a name (a Hub id) or a path reads as a path when
    it starts with `.` or names something that exists here (relative to the working folder)."""
    return _relative(value) and (value.startswith(".") or os.path.exists(value))


def named(settings: dict, keys) -> None:
    """Params that take a Hub name or a local path/URI (`tokenizer`, `dataset`: `{lang}` = a
    language code): one that reads as a relative path is refused; `org/name` stays a Hub id."""
    for key in keys:
        value = settings.get(key)
        if isinstance(value, str) and _named_path(value.replace("{lang}", "lua")):
            _refuse_relative(key, value)
        mounted(key, value)


def benchmark_sources(key: str, value: str) -> None:
    """`benchmark_source` (or one of corpus `benchmarks`): `humaneval`, a Hub dataset
    `owner/name`, or a JSONL path/URI; a relative JSONL path is refused."""
    from multiplt.benchmarks.sources import BUILTIN

    for item in (part.strip() for part in value.split(",")) if key == "benchmarks" else [value]:
        if item in BUILTIN:
            continue
        if not _relative(item):
            mounted(key, item)
            continue
        if item.startswith(".") or os.path.exists(item) or item.endswith((".jsonl", ".jsonl.gz",
                                                                          ".json", ".json.gz")):
            _refuse_relative(key, item)


def local_folder(key: str, value: str, local: bool) -> None:
    """An absolute local path or a file:// URI must be an existing folder. `local`: whether the
    stages run where this task runs (the local runtime); in a docker runtime's containers the
    worker's folders are not the stages' (mounts differ), so nothing is checked."""
    if not local or not isinstance(value, str):
        return
    if value.startswith("file://"):
        from multiplt.storage.uri import local_path

        with _refused(f"Param {key}", [key]):
            path = local_path(value)
    elif os.path.isabs(value):
        path = value
    else:
        return
    if not os.path.isdir(path):
        raise BadParams(f"Param {key}: {value!r} is no folder "
                        f"({'nothing' if not os.path.exists(path) else 'not a folder'} at {path})",
                        [key])


def schema(settings: dict, schemas: dict) -> None:
    """Every setting against its Param's JSON schema, as Airflow checks a triggered run's conf:
    a value from the Airflow Variable reaches the run unchecked."""
    import jsonschema

    for key, spec in schemas.items():
        if key not in settings:
            continue
        rules = {k: v for k, v in spec.items() if k not in ("default", "description")}
        try:
            jsonschema.validate(settings[key], rules)
        except jsonschema.ValidationError as exc:
            raise BadParams(f"Param {key}: {exc.message} ({spec['description']})",
                            [key]) from None


def backend(settings: dict, model: str | None) -> None:
    """The replay backend needs `replay_source`, and only it takes one; the openai backend needs
    `api_base` (an http(s) URL): generate's own checks (check_replay_source, the backends' from_options;
    replay's before it reads the source)."""
    from multiplt.generation.backends import backend_class

    name, source = settings["backend"], settings.get("replay_source")
    if name != "replay" and source:
        from multiplt.generation.driver import check_replay_source

        with _refused("Params backend, replay_source", ["backend", "replay_source"]):
            check_replay_source(name, source)
    if name == "replay" and not source:
        with _refused("Params backend, replay_source", ["backend", "replay_source"]):
            backend_class(name).from_options(replay_source=source)
    if name == "openai":
        with _refused("Params backend, api_base", ["backend", "api_base"]):
            backend_class(name).from_options(model=model, api_base=settings.get("api_base"))
    if name == "replay" and "://" in source:
        from multiplt.storage.uri import parse

        with _refused("Param replay_source", ["replay_source"]):
            parse(source.replace("{lang}", "lua"))  # any language code: they are [a-z]+


def model_kind(model, backend_name: str) -> str | None:
    """What `generate` (or translate, testgen, train) makes of `model`, the one rule for
    model_name and plans.hub_model: None for a name the openai and replay backends take as a
    label (a backend not in HUB_BACKENDS) or no string; else "uri" (a storage URI), "relative"
    (reads as a relative local path: _named_path), "path" (an absolute local path), "mistyped"
    (a mistyped URI, which the command refuses with its hint) or "hub" (a Hub repo id, which it
    downloads)."""
    if backend_name not in HUB_BACKENDS or not isinstance(model, str):
        return None
    from multiplt.storage.uri import mistyped

    if "://" in model:
        return "uri"
    if _named_path(model):
        return "relative"
    if model.startswith("/"):
        return "path"
    return "mistyped" if mistyped(model) is not None else "hub"


def model_name(model: str, backend_name: str, local: bool = False, key: str = "model") -> None:
    """A model that `generate` (or translate, testgen, train) would download from the Hub must be
    a Hub repo id (huggingface_hub's validator, whose message `generate` would print); a storage
    URI must parse; a relative local path is refused (RELATIVE), an absolute one or a file:// URI
    must be a folder when `local` (local_folder). The names the openai and replay backends take
    are left alone, and a mistyped URI is refused by the command with its hint (model_kind)."""
    kind = model_kind(model, backend_name)
    if kind == "uri":
        from multiplt.storage.uri import parse

        with _refused(f"Param {key}", [key]):
            parse(model)
    elif kind == "relative":
        _refuse_relative(key, model)
    elif kind == "hub":
        from huggingface_hub.errors import HFValidationError
        from huggingface_hub.utils import validate_repo_id

        with _refused(f"Param {key}: {model!r} is not a local folder or storage URI, nor a Hub repo id",
                      [key], (HFValidationError,)):
            validate_repo_id(model)
    if kind in ("uri", "path"):
        mounted(key, model)
        local_folder(key, model, local)


def sampling(settings: dict, model: str | None) -> None:
    """The evaluation settings (params.SAMPLING) that `benchmark build` or `generate` refuses."""
    from multiplt.benchmarks.sources import check_name

    backend(settings, model)
    paths(settings, ["replay_source"])
    benchmark_sources("benchmark_source", settings["benchmark_source"])
    with _refused("Param benchmark_source", ["benchmark_source"]):
        check_name(settings["benchmark_source"])


def evaluation(settings: dict, local: bool = False) -> None:
    """One evaluation's settings (a multiplt_evaluate run, or one model of its `rerun_models`).
    `local`: the stages run where this task runs (local_folder)."""
    from multiplt_pipelines.params import EVALUATE

    schema(settings, EVALUATE)
    sampling(settings, settings["model"])
    checkpoint(settings)
    named(settings, ["tokenizer"])
    tokenizer_revision(settings)
    model_name(settings["model"], settings["backend"], local)


def checkpoint(settings: dict) -> None:
    """`checkpoint_uri` (set by multiplt_finetune) marks the run as a checkpoint's evaluation,
    whose `tokenizer` (the one the manifest row names) stays out of the run folder's name
    (plans.checkpoint_run): so its `revision` must be a checkpoint tag LANG-EXPERIMENT-epochN, as
    multiplt_finetune's are; else a run by hand that sets it would share the folder of the run
    with the model's own tokenizer, which generate refuses. No stage reads it (generate records
    the checkpoint the manifest names): a relative path is refused, no mount is needed."""
    from multiplt_pipelines.plans import checkpoint_run

    paths(settings, ["checkpoint_uri"], staged=False)
    if settings.get("checkpoint_uri") and not checkpoint_run(settings):
        raise BadParams(f"Param checkpoint_uri marks the evaluation of a training output's "
                        f"checkpoint, whose revision is its tag LANG-EXPERIMENT-epochN (as "
                        f"multiplt_finetune sets both); revision {settings.get('revision')!r} is "
                        f"no checkpoint tag: give the tag, or leave checkpoint_uri out",
                        ["checkpoint_uri", "revision"])


def tokenizer_revision(settings: dict) -> None:
    """A `tokenizer_revision` (of a `rerun_models` entry; no Param of its own) needs a Hub
    `tokenizer`: what generate's own check (model_source.check_tokenizer_revision) refuses,
    worded in the entry's keys (rerun_entry names the entry: `rerun_models entry 'org/m':
    tokenizer_revision 'v1' needs a Hub tokenizer ...`)."""
    from multiplt.generation.model_source import tokenizer_revision_problem

    tokenizer, revision = settings.get("tokenizer"), settings.get("tokenizer_revision")
    problem = tokenizer_revision_problem(tokenizer, revision)
    why = {"empty": "tokenizer_revision is empty; give a Hub branch, tag or commit, or leave it out",
           "no tokenizer": f"tokenizer_revision {revision!r} needs a Hub tokenizer (a tokenizer "
                           "key); without one the model's own tokenizer is loaded at its revision",
           "not on the Hub": f"tokenizer_revision {revision!r} needs a Hub tokenizer; tokenizer "
                             f"{tokenizer!r} is a local path or storage URI, which has no revisions",
           }.get(problem)
    if why:
        raise BadParams(why, ["tokenizer", "tokenizer_revision"])


#: the keys of an object entry of multiplt_evaluate's `rerun_models` (`tokenizer_revision`:
#: generate's --tokenizer-revision, of a Hub `tokenizer`; no Param of its own)
RERUN_KEYS = ("model", "revision", "tokenizer", "tokenizer_revision")


def rerun_models(value) -> None:
    """multiplt_evaluate's `rerun_models` (the Param, or the Variable's value, which Airflow
    never validates): a list whose entries are model names or objects of RERUN_KEYS that name
    a model; a misspelled key (`revison`) would evaluate the default branch instead."""
    def refuse(problem: str):
        raise BadParams(f"Param rerun_models: {problem} (each entry a model name or "
                        f"{{{', '.join(RERUN_KEYS)}}})", ["rerun_models"])

    if value is None:
        return
    if not isinstance(value, list):
        refuse(f"{value!r} is not a list")
    for entry in value:
        if isinstance(entry, dict):
            unknown = [key for key in entry if key not in RERUN_KEYS]
            if unknown:
                refuse(f"entry {entry!r} has key {unknown[0]!r}")
            if any(entry.get(key) is not None and not isinstance(entry[key], str)
                   for key in RERUN_KEYS):
                refuse(f"entry {entry!r} has a value that is not a string")
            model = entry.get("model")
        else:
            model = entry
        if not isinstance(model, str) or not model.strip():
            refuse(f"entry {entry!r} names no model")


@contextlib.contextmanager
def rerun_entry(model: str):
    """A refusal, inside, of a `rerun_models` entry's model, revision or tokenizer names the
    entry and the Param `rerun_models` (a user looks there, not at the `model` Param)."""
    try:
        yield
    except BadParams as exc:
        if not set(exc.keys) & set(RERUN_KEYS):
            raise
        raise BadParams(f"rerun_models entry {model!r}: {exc}",
                        ["rerun_models", *(k for k in exc.keys if k not in RERUN_KEYS)]) from None


def generation(settings: dict, schemas: dict, local: bool = False) -> None:
    """A multiplt_testgen or multiplt_translate run's settings (`schemas`: its Params)."""
    schema(settings, schemas)
    backend(settings, settings["model"])
    paths(settings, [key for key in ("functions", "tests", "out", "replay_source") if key in schemas])
    model_name(settings["model"], settings["backend"], local)


def training(settings: dict, datasets: dict[str, str], local: bool = False) -> None:
    """A multiplt_finetune run's settings ({lang: dataset} to train on), and the evaluation
    settings it passes to the runs of multiplt_evaluate it triggers once training is over."""
    from multiplt_pipelines.params import FINETUNE

    schema(settings, FINETUNE)
    recipe(settings["recipe"])
    splits(datasets)
    sampling(settings, settings["base_model"])
    paths(settings, ["training_root"])
    named(settings, ["dataset"])
    model_name(settings["base_model"], "transformers", local, "base_model")


def corpus(settings: dict) -> None:
    """A multiplt_corpus run's paths: `source` (unless a named source such as `stdlib`:
    multiplt.corpus.sources.NAMED_SOURCES), `out`, `benchmarks`."""
    from multiplt.corpus.sources import NAMED_SOURCES

    source = settings.get("source")
    if not (isinstance(source, str) and source in NAMED_SOURCES):
        paths(settings, ["source"])
    paths(settings, ["out"])
    benchmark_sources("benchmarks", settings.get("benchmarks") or "")


def publishing(settings: dict) -> None:
    """A multiplt_publish run's paths: `dataset_uri`, `training_outputs`, `dry_run`; and its
    dataset repos: `dataset_repo` and `results_repo` are both Hub dataset repos, and each
    publication deletes the repo's `data/` files it did not write, so one repo for both would
    lose the dataset's splits to the results and back (`publish dataset` and `publish results`
    refuse that repo too, after the other's publication). `checkpoints_repo` is a model repo:
    of the same name as either, it is another repo."""
    paths(settings, ["dataset_uri", "training_outputs", "dry_run"])
    dataset, results = settings.get("dataset_repo"), settings.get("results_repo")
    if isinstance(dataset, str) and isinstance(results, str) and dataset.lower() == results.lower():
        raise BadParams(f"Params dataset_repo and results_repo: both are {dataset}, but a dataset and "
                        f"the results store need a dataset repo each (each publication deletes the "
                        f"other's data files); give results_repo another name",
                        ["dataset_repo", "results_repo"])


def recipe(name: str) -> None:
    """A recipe name must be one of multiplt/recipes/ (a .yaml path or a URI is read by train;
    a relative .yaml path is refused)."""
    from multiplt.training.config import recipe_location  # train --recipe's own resolution

    if name.endswith((".yaml", ".yml")) and _relative(name):
        _refuse_relative("recipe", name)
    with _refused("Param recipe", ["recipe"]):
        where = recipe_location(name)
    mounted("recipe", name)
    if where == name:  # a .yaml path or a URI: train reads it (and says what is wrong with it)
        return
    from multiplt.training.config import load_recipe

    with _refused("Param recipe", ["recipe"]):
        distributed = load_recipe(name).get("distributed")
    if distributed == "fsdp":  # the train task is one process: FSDP over one GPU holds it all
        raise BadParams(f"Param recipe: {name} shards the model over several GPUs (distributed: fsdp), "
                        f"but multiplt_finetune's train task runs `multiplt train` as one process on "
                        f"one GPU; train it by hand with `accelerate launch --num_processes N -m "
                        f"multiplt train --recipe {name} ...` (docs/training.md, Multi-GPU)", ["recipe"])


def splits(datasets: dict[str, str], param: str = "languages") -> None:
    """The published dataset (nuprl/MultiPL-T) holds a fixed set of splits (params.MULTIPLT_SPLITS,
    as `multiplt train` checks them): a language whose split is not one of them (Python, the
    source language; a language added to the registry) needs a dataset of its own. `param`: the
    Param that names the languages."""
    from multiplt import languages
    from multiplt.training.config import check_published_split

    from multiplt_pipelines.params import MULTIPLT_SPLITS

    for lang, dataset in datasets.items():
        split = languages.get(lang).split
        try:
            check_published_split(dataset, split, lang)
        except MultipltError:
            raise BadParams(f"Param {param}: {dataset} has no {split!r} split to fine-tune "
                            f"{lang} on (its splits: {', '.join(MULTIPLT_SPLITS)}); train {lang} "
                            "on a `dataset` of its own, e.g. its multiplt_translate output",
                            [param, "dataset"]) from None
