"""Turn one scored run folder into results-store rows.

A run folder (``multiplt.evaluation.run_folder``) holds what generate wrote (the resolved run
config) and what score wrote (the scores CSV: one pass@k row per k). Both are required: a row without the
config that produced it could not be compared with anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

from multiplt.errors import MultipltError, type_word
from multiplt.evaluation.run_folder import RUN_FILE, SCORES_FILE, parse_scores

LOG = logging.getLogger("multiplt.results")

# scores CSV column -> results store column
STORE_COLUMNS = {"Dataset": "dataset", "Pass@k": "k", "Estimate": "estimate",
                 "NumProblems": "num_problems", "MinCompletions": "min_completions",
                 "MaxCompletions": "max_completions"}
REQUIRED_CONFIG = ("model", "lang")


def _read_required(uri: str, what: str) -> str:
    from multiplt import storage

    if not storage.exists(uri):
        raise MultipltError(f"{uri} does not exist: {what}")
    return storage.read_text(uri)


def parse_run_config(text: str, uri: str) -> dict:
    import yaml

    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MultipltError(f"{uri} is not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise MultipltError(f"{uri} is not a YAML mapping")
    missing = [key for key in REQUIRED_CONFIG if config.get(key) in (None, "")]
    if missing:
        raise MultipltError(f"{uri} lacks {', '.join(missing)}")
    return config


def _opt(config: dict, key: str, kind, uri: str):
    """config[key] as `kind` (None when absent or empty); a MultipltError naming the file and key."""
    value = config.get(key)
    if value is None or value == "":
        return None
    try:
        if kind is int and (isinstance(value, bool) or isinstance(value, float) and not value.is_integer()):
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise MultipltError(f"{uri}: {key} {value!r} is not {type_word(kind)}") from None


def run_id_for(dataset: str, config: dict) -> str:
    """The folder name plus a hash of the resolved config: stable across re-recording. The
    record's `problems` (every problem a generate into the folder selected) is left out: a folder
    generated again with a wider selection is the same run, whose new rows replace the old."""
    config = {key: value for key, value in config.items() if key != "problems"}
    canonical = json.dumps(config, sort_keys=True, default=str)
    return f"{dataset}@{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"


def stored_run_uri(run_uri: str) -> str:
    """The `run_uri` a row records: a bare local path made absolute (`runs/x` recorded from /w
    is `/w/runs/x`, as the DAGs pass it), so the leaderboard finds the folder from any working
    directory; `file://` and `s3://` URIs as written. Without a trailing `/`."""
    from multiplt.storage import uri as uris

    run_uri = run_uri.rstrip("/") or run_uri
    if uris._SCHEME.match(run_uri):
        return run_uri
    return uris.parse(run_uri).path


def _not_a_file(run_uri: str) -> None:
    """`--scores` given a file (e.g. the scores CSV itself): an error naming the folder to give."""
    from multiplt import storage

    local = storage.local_path(run_uri)
    if local is not None:
        is_file = os.path.isfile(local)
    else:
        is_file = storage.exists(run_uri) and not storage.ls(run_uri)
    if is_file:
        parent = run_uri.rsplit("/", 1)[0] if "/" in run_uri else "."
        raise MultipltError(f"{run_uri} is a file, not a run folder: --scores takes the run folder "
                            f"(the folder holding {SCORES_FILE} and {RUN_FILE}), e.g. {parent or '/'}")


def load_run_rows(run_uri: str, experiment: str | None = None, epoch: int | None = None) -> list[dict]:
    """Rows (without created_at) for one scored run folder; labels given here override the config.
    Errors name the folder as given; the rows record it as `stored_run_uri` gives it."""
    from multiplt import storage

    run_uri = run_uri.rstrip("/") or run_uri
    _not_a_file(run_uri)
    scores_uri = storage.join(run_uri, SCORES_FILE)
    scores = parse_scores(_read_required(scores_uri, "run `multiplt score` on the run folder first"),
                          scores_uri)
    config_uri = storage.join(run_uri, RUN_FILE)
    config = parse_run_config(_read_required(config_uri, "it is written by `multiplt generate`"), config_uri)
    if epoch is not None and epoch < 0:
        raise MultipltError(f"epoch must be >= 0, got {epoch}")
    from multiplt import languages

    for code in str(config["lang"]).split(","):
        try:
            languages.get(code)
        except MultipltError as exc:
            raise MultipltError(f"{config_uri}: lang: {exc}") from None
    folder = storage.basename(run_uri)
    config_epoch = _opt(config, "epoch", int, config_uri)
    if config_epoch is not None and config_epoch < 0:
        raise MultipltError(f"{config_uri}: epoch must be >= 0, got {config_epoch}")
    base = {
        "run_uri": stored_run_uri(run_uri),
        "model": str(config["model"]),
        "revision": _opt(config, "revision", str, config_uri),
        "resolved_commit": _opt(config, "resolved_commit", str, config_uri),
        "tokenizer": _opt(config, "tokenizer", str, config_uri),
        "experiment": experiment if experiment is not None else _opt(config, "experiment", str, config_uri),
        "lang": str(config["lang"]),
        "epoch": epoch if epoch is not None else (config_epoch if config_epoch is not None else 0),
        "benchmark": _opt(config, "benchmark", str, config_uri),
        "benchmark_sha256": _opt(config, "benchmark_sha256", str, config_uri),
        "backend": _opt(config, "backend", str, config_uri),
        "seed": _opt(config, "seed", int, config_uri),
        "n": _opt(config, "n", int, config_uri),
        "temperature": _opt(config, "temperature", float, config_uri),
        "top_p": _opt(config, "top_p", float, config_uri),
        "max_new_tokens": _opt(config, "max_new_tokens", int, config_uri),
    }
    rows, seen = [], set()
    for score in ({STORE_COLUMNS[h]: v for h, v in row.items()} for row in scores):
        if (score["dataset"], score["k"]) in seen:  # one of them would be lost, or both kept
            raise MultipltError(f"{scores_uri} has two rows for Pass@k {score['k']} of {score['dataset']}")
        seen.add((score["dataset"], score["k"]))
        if score["dataset"] != folder:
            LOG.warning("%s: Dataset column %r differs from the folder name %r", run_uri, score["dataset"], folder)
        labels = {"experiment": base["experiment"], "epoch": base["epoch"]}
        rows.append({"run_id": run_id_for(score["dataset"], {**config, **labels}), **base, **score})
    return rows
