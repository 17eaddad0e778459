"""How a chained DAG's run finds its input, and what its Asset events announce (pure functions).

The chain: multiplt_corpus -> `multiplt_corpus_functions` -> multiplt_testgen ->
`multiplt_testgen_tests` -> multiplt_translate -> `multiplt_dataset_<lang>` -> multiplt_finetune.
Every event's extra names what it announces: its URI (`functions_uri`, `tests_uri`,
`dataset_uri`) and identity (source, model, lang) and its `rows`. A run started by such an event
takes its input from the event's extra, never from a guessed path; a run started by hand takes
the same input from its Params. An announced input with 0 rows stops the run (`EmptyInput`: the
DAG skips its plan task with the message, so nothing runs and nothing is announced).
"""

from __future__ import annotations

FUNCTIONS_ASSET = "multiplt_corpus_functions"
TESTS_ASSET = "multiplt_testgen_tests"
DATASET_ASSET_PREFIX = "multiplt_dataset_"
#: multiplt_evaluate's Asset (its URI: the results store), which multiplt_publish is scheduled on
RESULTS_ASSET = "multiplt_results"


def run_settings(variable_name: str, params, dag_run, names,
                 read_variable: bool = True) -> tuple[dict, set[str]]:
    """This run's settings: the Param values, overridden by the keys of the Airflow Variable
    `variable_name` (a JSON object) that the run's conf did not set. An Asset-triggered run has
    no conf, so the Variable is where a deployment sets its model, languages, ... (reads the
    Variable: call it inside a task). `names`: the DAG's Params (its id is `variable_name`); a
    key of the conf or of the Variable that is none of them is refused (checks.BadParams).
    `read_variable=False` (multiplt_evaluate's manual runs that name `model`): the Params as given, the conf's keys
    still checked, the Variable not read. Returns (settings, the keys whose value the Variable
    set): the checks name the Variable when they refuse one of those (checks.variable_source)."""
    from airflow.sdk import Variable

    from multiplt_pipelines import checks
    from multiplt_pipelines.publishing import effective

    conf = dict(dag_run.conf or {})
    checks.known_keys(conf, names, variable_name)
    if not read_variable:
        return dict(params), set()
    variable = Variable.get(variable_name, default=None, deserialize_json=True)
    checks.known_keys(variable, names, variable_name, f"Variable {variable_name}")
    params = dict(params)
    return (effective(params, conf, variable),
            {key for key in variable or {} if key in params and key not in conf})


def from_the_event(from_variable: set[str], given: dict, resolved: dict, key: str) -> set[str]:
    """The keys whose value the Variable set (run_settings), less `key` when the triggering
    event replaced its value (`given` -> `resolved`): the event's value, not the Variable's, so a
    check refusing it does not name the Variable."""
    return from_variable - {key} if resolved[key] != given[key] else set(from_variable)


class EmptyInput(Exception):
    """The input of this run has no rows; the message says which (the task is skipped)."""


def asset_events(triggering_asset_events) -> list[dict]:
    """The run's triggering Asset events as [{"name", "uri", "extra"}], oldest first, each once."""
    seen, out = set(), []
    for events in (triggering_asset_events or {}).values():
        for event in events:
            key = (event.asset.name, event.asset.uri, str(event.timestamp))
            if key not in seen:
                seen.add(key)
                out.append((str(event.timestamp), {"name": event.asset.name, "uri": event.asset.uri,
                                                   "extra": dict(event.extra or {})}))
    return [event for _, event in sorted(out, key=lambda pair: pair[0])]


def _announced(event: dict, key: str) -> dict:
    """The event's extra, checked: it names its input under `key` and has rows."""
    extra = event["extra"] or {}
    if not extra.get(key):
        raise ValueError(f"the {event['name']} event carries no {key!r} (extra: {extra}); "
                         f"start this DAG by hand with the input as a Param")
    if extra.get("rows") == 0:
        raise EmptyInput(f"nothing to do: the {event['name']} event announces {extra[key]} "
                         f"with 0 rows")
    return extra


def chained_input(params: dict, events: list[dict], *, asset: str, key: str, param: str) -> dict:
    """The Params of this run with `param` set to its input: the newest `asset` event's
    extra[key] for a run started by that Asset, else the Param as given (None = the plan's
    default). Raises ValueError when the event lacks `key`, EmptyInput when it has 0 rows."""
    mine = [e for e in events if e["name"] == asset]
    if not mine:
        return dict(params)
    extra = _announced(mine[-1], key)
    return {**params, param: extra[key]}


def chained_settings(dag_id: str, params, dag_run, names, triggering_asset_events, *, asset: str,
                     key: str, param: str) -> tuple[dict, set[str]]:
    """A chained DAG's run settings (run_settings: Params <- the Variable `dag_id` <- conf) with
    `param` set from the triggering `asset` event, if any (chained_input), and the keys whose
    value came from the Variable (less `param` when the event set it: from_the_event). Reads the
    Variable: call it in a task."""
    settings, from_variable = run_settings(dag_id, params, dag_run, names)
    chained = chained_input(settings, asset_events(triggering_asset_events), asset=asset, key=key,
                            param=param)
    return chained, from_the_event(from_variable, settings, chained, param)


def generation_plan(dag_id: str, schemas: dict, resolve, require, make, *, params, dag_run,
                    triggering_asset_events, data_uri: str, local: bool) -> dict:
    """The `plan` task of multiplt_testgen and multiplt_translate (`dag_id`, its Params
    `schemas`): the run's settings, `resolve(params, dag_run, triggering_asset_events)` ->
    (settings, the keys the Variable set), read once here; checked as a stage would check them
    (checks.generation; `local`: the stages run where this task runs) and by `require(settings,
    data_uri)` (its input named, and holding rows); then `make(settings, data_uri)`, what the
    task returns. Skipped (AirflowSkipException) when the input holds no row (EmptyInput);
    failed without retry (AirflowFailException) on settings a stage would refuse, a value taken
    from the Variable named as such."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from multiplt_pipelines import checks

    try:
        settings, from_variable = resolve(params, dag_run, triggering_asset_events)
        with checks.variable_source(from_variable, dag_id):
            checks.generation(settings, schemas, local=local)
            require(settings, data_uri)
            return make(settings, data_uri)
    except EmptyInput as reason:
        raise AirflowSkipException(str(reason)) from None
    except checks.BadParams as reason:
        raise AirflowFailException(str(reason)) from None


def given_input(params: dict, param: str, needs: str) -> str:
    """The run's input, Param `param`: set from the triggering event (chained_input) or, in a
    run started by hand, given. Nothing writes the Asset's URI, so there is no default: without
    it, checks.BadParams `Param <param>: a run started by hand needs <needs>`."""
    if params.get(param):
        return params[param]
    from multiplt_pipelines.checks import BadParams

    raise BadParams(f"Param {param}: a run started by hand needs {needs}", [param])


def chained_datasets(params: dict, events: list[dict]) -> tuple[dict, dict[str, str]]:
    """multiplt_finetune's (Params, {lang: dataset URI}): for a run started by dataset Asset
    events, the languages announced (the newest event of each) and each one's `dataset_uri`;
    for a manual run, Params `languages` and `dataset` (`{lang}` = each language code).
    Languages announced with 0 rows are left out; EmptyInput when none is left."""
    mine = [e for e in events if e["name"].startswith(DATASET_ASSET_PREFIX)]
    if not mine:
        return dict(params), {lang: params["dataset"].replace("{lang}", lang)
                              for lang in params["languages"]}
    newest = {}
    for event in mine:
        lang = (event["extra"] or {}).get("lang") or event["name"][len(DATASET_ASSET_PREFIX):]
        newest[lang] = event
    datasets, empty = {}, []
    for lang, event in sorted(newest.items()):
        try:
            datasets[lang] = _announced(event, "dataset_uri")["dataset_uri"]
        except EmptyInput:
            empty.append(lang)
    if not datasets:
        raise EmptyInput(f"nothing to train: the dataset events of {', '.join(empty)} announce "
                         f"0 rows")
    return {**params, "languages": list(datasets)}, datasets


def has_rows(files: list[str]) -> bool:
    """Whether any of these data files (parquet, JSONL) holds a row (parquet: its footer's row
    count; JSONL: a non-blank line), stopping at the first that does (reads storage)."""
    from multiplt import storage

    return any(storage.parquet_rows(uri) > 0 if uri.endswith(".parquet")
               else bool(storage.read_text(uri).strip()) for uri in files)


def require_rows(what: str, uri: str, list_files) -> None:
    """EmptyInput when the input `uri` (its data files: `list_files()`) holds no row, so a run
    started by hand on an empty input ends like one started by an empty event. An input that
    cannot be listed or read (missing, malformed, a corrupt file) passes: the stage command
    reports it with its one error line (exit 2), where a failed plan would show a traceback."""
    from multiplt.errors import MultipltError

    try:
        files = list_files()
        empty = files is not None and not has_rows(files)
    except MultipltError:
        return
    if empty:
        raise EmptyInput(f"nothing to do: the {what} {uri} has 0 rows")


def nonempty_datasets(datasets: dict[str, str]) -> dict[str, str]:
    """multiplt_finetune's {lang: dataset} without the languages whose storage dataset has 0 rows
    of that language's split (printed); EmptyInput when none is left (reads storage)."""
    from multiplt import languages
    from multiplt.training.data import storage_files

    kept, empty = {}, []
    for lang, uri in datasets.items():
        split = languages.get(lang).split
        try:
            require_rows(f"dataset (split {split})", uri, lambda: storage_files(uri, split))
        except EmptyInput as reason:
            print(f"{lang} left out: {reason}")
            empty.append(f"{lang} ({uri})")
            continue
        kept[lang] = uri
    if not kept:
        raise EmptyInput(f"nothing to train: the datasets of {', '.join(empty)} have 0 rows")
    return kept


def funnel_rows(funnel: dict) -> int:
    """Rows kept by a corpus or testgen run: the last step's `out` of its funnel.json."""
    steps = funnel.get("steps") or []
    return int(steps[-1]["out"]) if steps else 0


def announcement(kind: str, rows: int, extra: dict) -> dict:
    """An Asset event's extra, or EmptyInput (with the message for the task log and UI) when the
    stage kept 0 rows: an empty output is never announced."""
    if rows == 0:
        raise EmptyInput(f"{kind} kept 0 rows: nothing announced, the next DAG is not started "
                         f"(see the funnel: {extra.get('funnel_uri', 'funnel.json')})")
    return {**extra, "rows": rows}


# ---- multiplt_evaluate: how far each entry (a language of a model) of a run got -------------
# Its stages run per entry in two mapped task groups (build and generate; score and record),
# with execute between them mapped over the shards of every entry that was generated (Airflow
# 3.3 refuses a mapped task inside a mapped task group). The tasks that join them read the task
# instances' states to follow each entry on its own.

def mapped_states(states: dict, task_ids) -> dict[str, dict[int, str | None]]:
    """{task_id: {map_index: state}} of the mapped task instances of `task_ids` among `states`
    (Airflow's get_task_states: `{task_id}_{map_index}` -> state)."""
    out: dict[str, dict[int, str | None]] = {task_id: {} for task_id in task_ids}
    for key, state in states.items():
        for task_id in task_ids:
            index = key[len(task_id) + 1:] if key.startswith(task_id + "_") else ""
            if index.isdigit():
                out[task_id][int(index)] = state
    return out


def task_states(ti, task_ids) -> dict[str, dict[int, str | None]]:
    """mapped_states of `task_ids` in the run of the task instance `ti` (asks Airflow)."""
    task_ids = list(task_ids)
    states = ti.get_task_states(dag_id=ti.dag_id, task_ids=task_ids, run_ids=[ti.run_id])
    return mapped_states(states.get(ti.run_id) or {}, task_ids)


def shard_lanes(entries: list[dict], generated: dict[int, str | None]) -> list[list[str]]:
    """The execute command lines of the entries whose generate succeeded (`generated`: its
    state by entry index), in entry then shard order: what execute is mapped over."""
    return [argv for index, entry in enumerate(entries) if generated.get(index) == "success"
            for argv in entry["execute"]]


def _shard(argv: list[str], k: int) -> str:
    return argv[argv.index("--shard") + 1] if "--shard" in argv[:-1] else str(k)


def not_done(entry: dict, index: int, lanes: list[list[str]], states: dict,
             stages: list[tuple[str, list[str], bool]]) -> str | None:
    """Why the plan's entry `index` (`entry`) did not get through `stages`, or None when it
    did. `stages`: (name, its task ids, per shard) in order; a stage of the per-entry groups ran
    as map index `index`, a per-shard one once per execute command line of the entry, as the map
    index of that line in `lanes`; `states`: task_states of every task id. The reason names the
    first stage (and shard) that did not succeed and its state."""
    for name, task_ids, per_shard in stages:
        if not per_shard:
            for task_id in task_ids:
                state = states.get(task_id, {}).get(index)
                if state != "success":
                    return f"{name}: {state or 'not run'}"
            continue
        for k, argv in enumerate(entry["execute"]):
            lane = lanes.index(argv) if argv in lanes else None
            for task_id in task_ids:
                state = None if lane is None else states.get(task_id, {}).get(lane)
                if state != "success":
                    return f"{name} shard {_shard(argv, k)}: {state or 'not run'}"
    return None


def evaluation_results(entries: list[dict], lanes: list[list[str]], states: dict,
                       stages: list[tuple[str, list[str], bool]]) -> tuple[list[dict], list[dict]]:
    """(recorded, failed): the entries that got through every stage, as {lang, model, revision,
    run}, and the others, each with its `reason` (not_done)."""
    recorded, failed = [], []
    for index, entry in enumerate(entries):
        run = {key: entry[key] for key in ("lang", "model", "revision", "run")}
        reason = not_done(entry, index, lanes, states, stages)
        if reason:
            failed.append({**run, "reason": reason})
        else:
            recorded.append(run)
    return recorded, failed


def failed_line(failed: list[dict]) -> str:
    """The failed entries of evaluation_results in one line."""
    return "; ".join(f"{f['lang']} {f['model']}@{f['revision'] or 'main'} ({f['run']}): "
                     f"{f['reason']}" for f in failed)
