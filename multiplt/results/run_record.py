"""Turn one scored run folder into results-store rows.

A run folder (``multiplt.evaluation.run_folder``) holds what generate wrote (the resolved run
config) and what score wrote (the scores CSV: one pass@k row per k). Both are required: a row without the
config that produced it could not be compared with anything. Each row also carries what its
samples' results files say of how they ended (STATUS_COLUMNS: the status counts, the Timeout
count and the timeout limits they ran under), read as `multiplt score` reads them, so a pass@k
of 0.0 from a run whose programs all timed out is told from a real one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os

from multiplt.errors import MultipltError, type_word
from multiplt.evaluation.passk import judge_counts, status_summary
from multiplt.evaluation.run_folder import (RUN_FILE, SCORES_FILE, SELECTION_ERROR,
                                            is_recorded_selection, parse_run_yaml, parse_scores)
from multiplt.results.base_model import checkpoint_base
from multiplt.results.benchmarks import PARTIAL, recorded_selection
from multiplt.training.config import check_experiment

LOG = logging.getLogger("multiplt.results")

# scores CSV column -> results store column
STORE_COLUMNS = {"Dataset": "dataset", "Pass@k": "k", "Estimate": "estimate",
                 "NumProblems": "num_problems", "MinCompletions": "min_completions",
                 "MaxCompletions": "max_completions"}
REQUIRED_CONFIG = ("model", "lang")
#: the columns of a row's samples' statuses (null where the run folder holds no results files):
#: `statuses` ({status: samples} as JSON, most first), `timeouts` (samples that timed out),
#: `min_timeout_s` / `max_timeout_s` (the least and most wall-clock limit their results record;
#: null where none records one, as MultiPL-E's results)
STATUS_COLUMNS = ("statuses", "timeouts", "min_timeout_s", "max_timeout_s")


def _read_required(uri: str, what: str) -> str:
    from multiplt import storage

    if not storage.exists(uri):
        raise MultipltError(f"{uri} does not exist: {what}")
    return storage.read_text(uri)


def parse_run_config(text: str, uri: str) -> dict:
    config = parse_run_yaml(text, uri)  # a key written twice (a second `model:`) is refused
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
    record's `problems` (every problem a generate into the folder selected) and `selection` (the
    part of the benchmark they are) are left out: a folder generated again with a wider
    selection is the same run, whose new rows replace the old (and a record that gained
    `selection` keeps its run's id). So is its `provenance` (the code and library versions of
    the last generate that drew samples): a folder resumed by a newer version of the code is the
    same run (and a record that gained it keeps its run's id). So is its state: `complete:
    false` (a generate cut short) hashes as `complete: true`, so the run finished and recorded
    again replaces the rows recorded with --allow-partial (and the rows of complete runs keep
    the ids they had before this rule)."""
    config = {key: value for key, value in config.items()
              if key not in ("problems", "selection", "provenance")}
    if config.get("complete") is False:
        config["complete"] = True
    canonical = json.dumps(config, sort_keys=True, default=str)
    return f"{dataset}@{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"




def recorded_code_version(config: dict, uri: str) -> str | None:
    """The `code_version` of the run record's `provenance` (multiplt.provenance, written by
    generate), or None for a record without one (an older generate's); a `provenance` that is
    not a mapping is an error naming the record."""
    block = config.get("provenance")
    if block is None:
        return None
    if not isinstance(block, dict):
        raise MultipltError(f"{uri}: provenance must be a mapping (generate writes it), got {block!r}")
    return _opt(block, "code_version", str, f"{uri}: provenance")


def _experiment(config: dict, uri: str) -> str | None:
    """The run record's experiment label (None when it has none); one that `train` would not
    take is an error naming the record and the way out (--experiment relabels the run)."""
    label = _opt(config, "experiment", str, uri)
    if label is not None:
        try:
            check_experiment(label, f"{uri}: experiment")
        except MultipltError as exc:
            raise MultipltError(f"{exc}; record the run with --experiment NAME") from None
    return label


def stored_run_uri(run_uri: str) -> str:
    """The `run_uri` a row records: a bare local path made absolute (`runs/x` recorded from /w
    is `/w/runs/x`, as the DAGs pass it), so the leaderboard finds the folder from any working
    directory; `file://` and `s3://` URIs as written. Without a trailing `/`."""
    from multiplt.storage import uri as uris

    run_uri = run_uri.rstrip("/") or run_uri
    if uris._SCHEME.match(run_uri):
        return run_uri
    return uris.parse(run_uri).path


def stored_model(model: str, config: dict) -> str:
    """The `model` a row records: a model folder or training output that generate was given as a
    relative local path (`--model tr --revision TAG`, `./tr/`) made absolute, as `stored_run_uri`
    makes the run folder, so `publish checkpoints --from /abs/tr --results-store` and `publish
    results` find it from any working directory. A checkpoint whose record holds its absolute
    `checkpoint_uri` (OUT/checkpoints/TAG: a run of `--model OUT --revision TAG`, whose manifest
    row names it absolute) is stored as that OUT, wherever the run is recorded from. Else only a
    path that is a folder from here (record from where generate ran) and that generate did not
    fetch from the Hub (no Hub commit in the record) is made absolute, against the folder the
    run is recorded from; one that is no folder here is stored as written, with a warning where
    it is plainly a path (`./x`, `../x`, or a checkpoint's training output). A Hub id (`org/name`,
    `gpt2`), a URI or an absolute path stays as written. (The `tokenizer` column is stored as the
    record names it.)"""
    from multiplt.storage import uri as uris

    if uris._SCHEME.match(model) or os.path.isabs(model):
        return model
    commit = config.get("resolved_commit")
    if isinstance(commit, str) and len(commit) == 40:  # fetched from the Hub
        return model
    recorded = _recorded_output(config)
    if recorded is not None:
        return recorded
    if os.path.isdir(model):
        return os.path.abspath(model)
    if model.startswith(("./", "../")) or model in (".", "..") or config.get("checkpoint_uri"):
        LOG.warning("model %s is a relative path that is no folder from here: recorded as written "
                    "(record the run from the folder generate ran in to record its absolute path)", model)
    return model


def _recorded_output(config: dict) -> str | None:
    """The training output OUT of the run record's `checkpoint_uri` when that is an absolute local
    OUT/checkpoints/TAG (TAG: the record's checkpoint_tag, else its revision); None otherwise (a
    checkpoint loaded by a relative folder, whose uri is as given; none at all)."""
    from multiplt.storage import uri as uris

    uri, tag = config.get("checkpoint_uri"), config.get("checkpoint_tag") or config.get("revision")
    if not isinstance(uri, str) or not isinstance(tag, str) or not tag:
        return None
    if uri.startswith("file://"):
        path = uris.local_path(uri)
    elif os.path.isabs(uri):
        path = uri
    else:
        return None
    checkpoints, _, last = os.path.normpath(path).rpartition("/")
    if last != tag or os.path.basename(checkpoints) != "checkpoints":
        return None
    return os.path.dirname(checkpoints)


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


def load_run_rows(run_uri: str, experiment: str | None = None, epoch: int | None = None,
                  allow_partial: bool = False) -> list[dict]:
    """Rows (without created_at) for one scored run folder; labels given here override the config.
    Errors name the folder as given; the rows record it as `stored_run_uri` gives it, and the
    model as `stored_model` does (a relative local path made absolute).

    The run's identity (`run_id`) is its folder name and config with the experiment label: one
    base model's folder, shared by the experiments that evaluate it, is recorded once per
    experiment. The epoch label is not part of it: `--epoch N` relabels the run, replacing its
    rows. A checkpoint's run record (generate's) holds its epoch and experiment from its
    training manifest; one loaded by its folder is stored as its training output and tag
    (_model_and_revision). A checkpoint's rows name the base model it was trained from
    (`base_model`: base_model.checkpoint_base, from its training manifest), by which the
    leaderboard pairs it with the base's own run. A run not wholly scored (incomplete_reason)
    is an error unless `allow_partial`; then its rows are recorded under a benchmark of their
    own (`..._partial`).
    Each row's
    `selection` says which part of its benchmark the run covered (recorded_selection: the
    run record's, where generate kept it), and its `code_version` which code drew the samples
    (recorded_code_version: the run record's provenance, where generate kept it)."""
    from multiplt import storage

    run_uri = run_uri.rstrip("/") or run_uri
    if experiment is not None:
        check_experiment(experiment)
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
    if config.get("selection") is not None and not is_recorded_selection(config["selection"]):
        raise MultipltError(f"{config_uri}: {SELECTION_ERROR.format(selection=config['selection'])}")
    folder = storage.basename(run_uri)
    config_epoch = _opt(config, "epoch", int, config_uri)
    if config_epoch is not None and config_epoch < 0:
        raise MultipltError(f"{config_uri}: epoch must be >= 0, got {config_epoch}")
    model, revision = _model_and_revision(config, config_uri)
    if epoch is None and config_epoch is None and config.get("checkpoint_uri"):
        LOG.warning("%s: the run record names the checkpoint %s but no epoch (generate before it "
                    "took a checkpoint's epoch and experiment from its training manifest): recorded "
                    "as epoch 0, the base model's; record it with --epoch N (and --experiment X)",
                    run_uri, config["checkpoint_uri"])
    stored = stored_model(model, config)
    base = {
        "run_uri": stored_run_uri(run_uri),
        "model": stored,
        "revision": revision,
        "resolved_commit": _opt(config, "resolved_commit", str, config_uri),
        "tokenizer": _opt(config, "tokenizer", str, config_uri),
        "tokenizer_revision": _opt(config, "tokenizer_revision", str, config_uri),
        "tokenizer_resolved_commit": _opt(config, "tokenizer_resolved_commit", str, config_uri),
        "experiment": experiment if experiment is not None else _experiment(config, config_uri),
        "lang": str(config["lang"]),
        "epoch": epoch if epoch is not None else (config_epoch if config_epoch is not None else 0),
        "base_model": checkpoint_base(config, stored, revision, run_uri),
        "benchmark": _opt(config, "benchmark", str, config_uri),
        "benchmark_sha256": _opt(config, "benchmark_sha256", str, config_uri),
        "backend": _opt(config, "backend", str, config_uri),
        "seed": _opt(config, "seed", int, config_uri),
        "n": _opt(config, "n", int, config_uri),
        "temperature": _opt(config, "temperature", float, config_uri),
        "top_p": _opt(config, "top_p", float, config_uri),
        "max_new_tokens": _opt(config, "max_new_tokens", int, config_uri),
        "code_version": recorded_code_version(config, config_uri),
    }
    scores = [{STORE_COLUMNS[h]: v for h, v in row.items()} for row in scores]
    seen = set()
    for score in scores:
        if (score["dataset"], score["k"]) in seen:  # one of them would be lost, or both kept
            raise MultipltError(f"{scores_uri} has two rows for Pass@k {score['k']} of {score['dataset']}")
        seen.add((score["dataset"], score["k"]))
        if score["dataset"] != folder:
            LOG.warning("%s: Dataset column %r differs from the folder name %r", run_uri, score["dataset"], folder)
    selected = config.get("problems")
    selected = selected if isinstance(selected, list) and selected else None
    # as `multiplt score` sees it now
    now, unexecuted, counts = judge_counts(run_uri, [s["k"] for s in scores])
    partial = incomplete_reason(config, scores, selected, None if now is None else unexecuted)
    if partial and not allow_partial:
        raise MultipltError(f"{run_uri} is not a complete run: {partial}, so its scores cover only "
                            f"part of it; finish the run and score it again (`multiplt score --in "
                            f"{run_uri}`), or record it with --allow-partial, which records it under a "
                            f"benchmark of its own (its name ends in {PARTIAL}), apart from the full "
                            f"benchmark's scores; nothing recorded")
    check_scores_current(run_uri, scores, now, bool(partial))
    if partial:
        LOG.warning("%s: not a complete run: %s; --allow-partial: recorded under a benchmark of its "
                    "own (its name ends in %s)", run_uri, partial, PARTIAL)
    covered = selected if selected is not None else _problems_in(run_uri)
    # the epoch label is the config's (as generate recorded it), not --epoch's: relabelling a run
    # replaces its rows; the experiment label is --experiment's (see the docstring)
    labels = {"experiment": base["experiment"], "epoch": config_epoch if config_epoch is not None else 0}
    selections: dict[str, str | None] = {}  # per Dataset value (the folder's name): one read each
    rows = []
    for score in scores:
        if score["dataset"] not in selections:
            selections[score["dataset"]] = recorded_selection(run_uri, config, covered, score["dataset"],
                                                              bool(partial))
        rows.append({"run_id": run_id_for(score["dataset"], {**config, **labels}), **base,
                     "selection": selections[score["dataset"]], **score,
                     **status_columns(counts if now is not None else None, score["k"])})
    return rows


def status_columns(counts: list[dict] | None, k: int) -> dict:
    """STATUS_COLUMNS of a pass@`k` row from passk.read_counts' rows (the samples of the
    problems with at least k results, those the row counts); all null for None (no results
    files)."""
    if counts is None:
        return dict.fromkeys(STATUS_COLUMNS)
    summary = status_summary(counts, k)
    limits = list(summary["timeout_limits"])
    return {"statuses": json.dumps(summary["statuses"]), "timeouts": summary["timeouts"],
            "min_timeout_s": min(limits, default=None), "max_timeout_s": max(limits, default=None)}


def _model_and_revision(config: dict, uri: str) -> tuple[str, str | None]:
    """The model and revision a run's rows name: the run record's, except for a checkpoint that
    generate loaded by its folder (`--model OUT/checkpoints/TAG`), whose record names its
    `training_output` and `checkpoint_tag`: it is stored as OUT at revision TAG, as a run of
    `--model OUT --revision TAG` (and the fine-tune DAG's) is, so the leaderboard shows one
    checkpoint once and `publish checkpoints --results-store` finds its pass@1 by its tag."""
    output = _opt(config, "training_output", str, uri)
    tag = _opt(config, "checkpoint_tag", str, uri)
    if (output is None) != (tag is None):
        there = "training_output" if tag is None else "checkpoint_tag"
        raise MultipltError(f"{uri}: training_output and checkpoint_tag go together (a checkpoint "
                            f"generate loaded by its folder), but only {there} is there")
    if output is not None:
        return output, tag
    return str(config["model"]), _opt(config, "revision", str, uri)


def incomplete_reason(config: dict, scores: list[dict], selected: list[str] | None,
                      unexecuted: list[tuple[str, int, int]] | None = None) -> str | None:
    """Why the scores of a run folder do not cover the whole run, or None: its run record says
    `complete: false` (the last generate into it did not finish); its pass@1 covers fewer
    problems than generate selected; a problem has fewer results than completions (`unexecuted`,
    passk.judge's: generate added samples, and the execute that followed was cut or never ran).
    `multiplt score` refuses such a folder unless --allow-partial. A folder without results
    files (`unexecuted` None) has only its scores to tell: a pass@k row whose least results per
    problem are fewer than the record's `n` (the most samples any generate asked for) is from
    before the folder grew, or partial."""
    if config.get("complete") is False:
        return "its run record says complete: false (the last `multiplt generate` into it did not finish)"
    pass1 = next((s for s in scores if s["k"] == 1), None)
    if selected is not None and pass1 is not None and pass1["num_problems"] < len(set(selected)):
        return (f"its pass@1 covers {pass1['num_problems']} of the {len(set(selected))} problems "
                f"`multiplt generate` selected")
    if unexecuted:
        shown = ", ".join(f"{p} ({have} of {want})" for p, have, want in unexecuted[:3])
        return (f"{len(unexecuted)} problem(s) have fewer results than completions (not fully "
                f"executed: run `multiplt execute` on it), e.g. {shown}")
    n = config.get("n")
    short = next((s for s in scores if isinstance(n, int) and s["min_completions"] < n), None)
    if unexecuted is None and short is not None:
        return (f"its pass@{short['k']} row counts as few as {short['min_completions']} results "
                f"for a problem, of the n={n} samples per problem its run record asks for")
    return None


def check_scores_current(run_uri: str, scores: list[dict], now: list[dict] | None,
                         partial: bool) -> None:
    """Raise unless the folder's scores file holds, k for k, the rows `now` that `multiplt
    score` computes from its results files now (passk.judge, which reads every one of them as
    score does: exact, and no dearer than a score): a folder that changed after it was scored
    (an execute ran the samples a later generate added, or ran Timeouts again under a longer
    limit) holds another run's scores. `partial`: the run is not complete, so its scores come
    from `score --allow-partial`. A folder without results files (`now` None: its scores alone)
    has nothing to check them against."""
    if now is None:
        LOG.info("%s holds no results files: its %s is taken as it is", run_uri, SCORES_FILE)
        return
    computed = {row["Pass@k"]: {STORE_COLUMNS[h]: v for h, v in row.items() if h != "Dataset"}
                for row in now}
    for score in sorted(scores, key=lambda s: s["k"]):
        said = {key: value for key, value in score.items() if key != "dataset"}
        if not _same_row(computed.get(score["k"]), said):
            raise MultipltError(
                f"{run_uri}: its {SCORES_FILE} is out of date: pass@{score['k']} {_row_text(said)} "
                f"there, {_row_text(computed.get(score['k']))} from its results files now (the "
                f"folder changed after `multiplt score`); run `multiplt score --in {run_uri}"
                f"{' --allow-partial' if partial else ''}` again; nothing recorded")


def _same_row(computed: dict | None, said: dict) -> bool:
    """Whether a scores row says what score computes now: the counts exactly, the estimate to
    rounding (a folder scored by an earlier version, `1 - comb/comb`, or by MultiPL-E's own
    pass_k.py under the same header gives 0.050000000000000044 where this one gives 0.05)."""
    if computed is None or computed.keys() != said.keys():
        return False
    return all(math.isclose(value, said[key], rel_tol=1e-9, abs_tol=1e-12)
               if key == "estimate" and isinstance(value, float) and isinstance(said[key], (int, float))
               else value == said[key] for key, value in computed.items())


def _row_text(row: dict | None) -> str:
    if row is None:
        return "no row (no problem has results enough)"
    return (f"{row['estimate']} over {row['num_problems']} problem(s) with "
            f"{row['min_completions']}..{row['max_completions']} results")


def _problems_in(run_uri: str) -> list[str]:
    """The problems with a completions or results file in the run folder (for run records written
    before generate listed the problems it selected)."""
    from multiplt import storage
    from multiplt.evaluation.run_folder import completions_name, results_name

    names = []
    for uri in storage.ls(run_uri):
        base = storage.basename(uri)
        name = results_name(base) or completions_name(base)
        if name is not None:
            names.append(name)
    return list(dict.fromkeys(names))
