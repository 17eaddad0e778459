"""What a stage command would refuse in a run's settings, refused by the run's first task
(`plan`, `settings` in multiplt_finetune) before any stage runs. Nothing here reads storage or
the Hub (only whether a bare name is a local path): a source or model that does not exist is
the stage's to report.

Airflow checks each Param alone against its JSON schema when a run is triggered. These checks
cover the rest: a value that needs another Param (the replay backend's `replay_source`, the
openai backend's `api_base`), a benchmark source, a Hub repo id, a recipe name, a language the
dataset has no split for; and values taken from an Airflow Variable (scheduled and Asset-
triggered runs), which Airflow never validates. They call the commands' own validation, so the
message is the command's; the DAG fails the task with it (`BadParams`; no retry).
"""

from __future__ import annotations

import contextlib

from multiplt.errors import MultipltError

#: backends that load `model` by name (multiplt.generation.model_source): a Hub id is downloaded
HUB_BACKENDS = ("transformers", "vllm")


class BadParams(ValueError):
    """A setting a stage command would refuse; the message names the Params and the problem."""


@contextlib.contextmanager
def _refused(what: str, errors: tuple[type[Exception], ...] = (MultipltError,)):
    """A command's validation error as BadParams naming `what` (the Params involved)."""
    try:
        yield
    except errors as exc:
        raise BadParams(f"{what}: {exc}") from None


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
            raise BadParams(f"Param {key}: {exc.message} ({spec['description']})") from None


def backend(settings: dict, model: str | None) -> None:
    """The replay backend needs `replay_source`, and only it takes one; the openai backend needs
    `api_base` (an http(s) URL): generate's own checks (check_replay_source, the backends' from_options;
    replay's before it reads the source)."""
    from multiplt.generation.backends import backend_class

    name, source = settings["backend"], settings.get("replay_source")
    if name != "replay" and source:
        from multiplt.generation.driver import check_replay_source

        with _refused("Params backend, replay_source"):
            check_replay_source(name, source)
    if name == "replay" and not source:
        with _refused("Params backend, replay_source"):
            backend_class(name).from_options(replay_source=source)
    if name == "openai":
        with _refused("Params backend, api_base"):
            backend_class(name).from_options(model=model, api_base=settings.get("api_base"))
    if name == "replay" and "://" in source:
        from multiplt.storage.uri import parse

        with _refused("Param replay_source"):
            parse(source.replace("{lang}", "lua"))  # any language code: they are [a-z]+


def model_name(model: str, backend_name: str) -> None:
    """A model that `generate` (or translate, testgen) would download from the Hub must be a Hub
    repo id (huggingface_hub's validator, whose message `generate` would print); a storage URI
    must parse. Local paths and the names the openai and replay backends take are left alone."""
    if backend_name not in HUB_BACKENDS:
        return
    import os

    from multiplt.storage.uri import mistyped, parse

    if "://" in model:
        with _refused("Param model"):
            parse(model)
        return
    if os.path.exists(model) or model.startswith((".", "/")) or mistyped(model) is not None:
        return  # a local folder; a mistyped URI is refused by the command with its hint
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    with _refused(f"Param model: {model!r} is not a local folder or storage URI, nor a Hub repo id",
                  (HFValidationError,)):
        validate_repo_id(model)


def sampling(settings: dict, model: str | None) -> None:
    """The evaluation settings (params.SAMPLING) that `benchmark build` or `generate` refuses."""
    from multiplt.benchmarks.sources import check_name

    backend(settings, model)
    with _refused("Param benchmark_source"):
        check_name(settings["benchmark_source"])


def evaluation(settings: dict) -> None:
    """One evaluation's settings (a multiplt_evaluate run, or one model of its `rerun_models`)."""
    from multiplt_pipelines.params import EVALUATE

    schema(settings, EVALUATE)
    sampling(settings, settings["model"])
    model_name(settings["model"], settings["backend"])


def generation(settings: dict, schemas: dict) -> None:
    """A multiplt_testgen or multiplt_translate run's settings (`schemas`: its Params)."""
    schema(settings, schemas)
    backend(settings, settings["model"])
    model_name(settings["model"], settings["backend"])


def training(settings: dict, datasets: dict[str, str]) -> None:
    """A multiplt_finetune run's settings ({lang: dataset} to train on), and the evaluation
    settings it passes to the runs of multiplt_evaluate it triggers once training is over."""
    from multiplt_pipelines.params import FINETUNE

    schema(settings, FINETUNE)
    recipe(settings["recipe"])
    splits(datasets)
    sampling(settings, settings["base_model"])


def recipe(name: str) -> None:
    """A recipe name must be one of multiplt/recipes/ (a .yaml path or a URI is read by train)."""
    from multiplt.training.config import recipe_location  # train --recipe's own resolution

    with _refused("Param recipe"):
        recipe_location(name)


def splits(datasets: dict[str, str]) -> None:
    """The default dataset (nuprl/MultiPL-T) holds one split per MultiPL-T target language: a
    language it has no split for (Python, the source language) needs a dataset of its own."""
    from multiplt import languages

    from multiplt_pipelines.params import MULTIPLT_DATASET

    for lang, dataset in datasets.items():
        if dataset == MULTIPLT_DATASET and not languages.get(lang).target:
            held = ", ".join(languages.get(code).split for code in languages.targets())
            split = languages.get(lang).split
            raise BadParams(f"Param languages: {MULTIPLT_DATASET} has no {split!r} split to "
                            f"fine-tune {lang} on (its splits: {held}); give a `dataset` with one")
