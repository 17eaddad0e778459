"""How a chained DAG's run finds its input, and what its Asset events announce (pure functions).

The chain: multiplt_corpus -> `multiplt_corpus_functions` -> multiplt_testgen ->
`multiplt_testgen_tests` -> multiplt_translate -> `multiplt_dataset_<lang>` -> multiplt_finetune.
Every event's extra names what it announces: its URI (`functions_uri`, `tests_uri`,
`dataset_uri`) and identity (source, model, lang) and its `rows`. A run started by such an event
takes its input from the event's extra, never from a guessed path; a run started by hand takes
the same input from its Params. An announced input with 0 rows stops the run (`EmptyInput`: the
DAG skips its plan task with the message, so nothing runs and nothing is announced).

A run of multiplt_testgen or multiplt_translate processes one input, the newest triggering event's;
every other input announced to it (other_input_runs) gets a run of its own, so none is dropped
(but translate's when the Variable sets `out`, and any when the Param `other_inputs` is `log`, as
the main job sets it: a WARNING then gives the conf to start it by hand),
and an Asset-triggered run whose input already has such a run skips its plan (generation_plan).
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
    default). Raises ValueError when the event lacks `key`, EmptyInput when it has 0 rows. The
    other inputs of the run's events are not dropped: other_input_runs starts a run for each."""
    mine = [e for e in events if e["name"] == asset]
    if not mine:
        return dict(params)
    extra = _announced(mine[-1], key)
    return {**params, param: extra[key]}


# ---- the inputs announced to a chained run that it does not process itself -----------------
# multiplt_testgen and multiplt_translate (max_active_runs=1) process one input per run: the
# newest triggering event's (chained_input). Airflow hands a run every event queued since the
# DAG's previous Asset-triggered run, so a run may be started by events announcing several
# inputs (corpora, tests datasets), and Airflow 3.3.2 (apache/airflow#56050, fixed in 3.4) hands
# a run only the events up to the first one queued for it: one that arrived after that and
# before the run was created (while a run was active) belongs to no run until another event of
# the Asset arrives. Each such input gets a run of its own, triggered with the input as its Param.

def _utc(timestamp):
    import datetime

    if isinstance(timestamp, str):
        timestamp = datetime.datetime.fromisoformat(timestamp)
    return timestamp.astimezone(datetime.timezone.utc)


def _announced_inputs(events, asset: str, key: str) -> list[dict]:
    """The `asset` events among Airflow's `events` (each with .asset, .extra and .timestamp) as
    [{"input", "rows", "timestamp", "extra"}], oldest first, each once."""
    seen, out = set(), []
    for event in events:
        if event.asset.name != asset:
            continue
        extra, stamp = dict(event.extra or {}), _utc(event.timestamp)
        if (stamp, event.asset.uri) not in seen:
            seen.add((stamp, event.asset.uri))
            out.append({"input": extra.get(key), "rows": extra.get("rows"), "timestamp": stamp,
                        "extra": extra})
    return sorted(out, key=lambda item: item["timestamp"])


def input_run_id(uri: str, timestamp) -> str:
    """The run id of the run started for the input `uri` as announced by the event of
    `timestamp` (the newest event announcing it): the same in every run that starts it, so a
    retried task, or a later run whose events include that event, finds the run instead of
    starting another (TriggerDagRunOperator's skip_when_already_exists), while the input
    announced again (rewritten) gets a new run. Only characters of Airflow's default
    `allowed_run_id_pattern` (and no `..`, which Airflow refuses), at most 180 of them."""
    import hashlib
    import re

    stamp = _utc(timestamp).strftime("%Y%m%dT%H%M%S%fZ")
    digest = hashlib.sha1(uri.encode()).hexdigest()[:10]
    tail = re.sub(r"[^A-Za-z0-9-]+", "_", uri).strip("_-")[-120:]
    return f"announced__{stamp}__{digest}__{tail}"


def _when(item: dict) -> str:
    return item["timestamp"].isoformat()


def other_inputs(dag_id: str, mine: list[dict], newer: list[dict] | None, started, *, asset: str,
                 key: str, param: str, out: str | None = None, nested_out=None,
                 own_out=None, mode: str = "run") -> tuple[list[dict], list[tuple[str, str]]]:
    """(the runs of `dag_id` to start, the log lines) for a run started by the `asset` events
    `mine` (_announced_inputs, oldest first; each announces an input as extra[key]).

    `mode`: the run's `other_inputs` (other_inputs_settings). "log": no run is started; a WARNING
    names each input that would have got one and the conf to start the DAG with by hand, its
    `out` the input's default folder `own_out(input)` (the main job sets it: it processes its
    own corpus, and an input queued before it began is not its work).

    `out`: this run's `out` when the Variable or a Param set it (other_inputs_settings), which the runs
    started here would read too and so plan into the same folder (refused by the stage: it holds
    another input's rows); None: each run takes its input's default folder. With `out`, another
    input's run gets `nested_out(input)` as `out` in its conf (testgen: a folder of its own
    inside `out`), or, without `nested_out` (translate: `multiplt train` reads a dataset
    folder's data files recursively, so a dataset inside another would be trained on as part of
    it), no run: a WARNING names the input and the conf to start the DAG with by hand, its `out`
    the input's default folder `own_out(input)`.

    The run processes the newest event's input (chained_input). Every other input that an event
    of `mine` announces, each once, gets a run: TriggerDagRunOperator kwargs, conf
    `{param: input}`, run id input_run_id (of the newest event announcing it), and a note.
    `newer`: the `asset` events after the newest of `mine` that no run of `dag_id` consumed
    (None: they could not be read). When all of them came before this run started (`started`,
    its start date), no run takes them until another `asset` event arrives (Airflow 3.3.2,
    apache/airflow#56050): their inputs get runs the same way. When one came after, it queued
    the DAG's next Asset-triggered run, which takes them all: they are left to it. Not run, with
    the reason: an input announced with 0 rows, the input this run processes announced again
    before it started (this run reads it as it is now), and (a WARNING) an event naming no input.
    The log lines, (level, message), name every input and what becomes of it."""
    lines: list[tuple[str, str]] = []
    if not mine:
        return [], lines
    newest = mine[-1]
    here = newest["input"]
    if not here:
        lines.append(("warning", f"the newest {asset} event ({_when(newest)}) names no {key!r} "
                                 f"(extra: {newest['extra']}): plan fails; start {dag_id} by "
                                 f"hand with the input as Param {param}"))
    elif newest["rows"] == 0:
        lines.append(("info", f"this run: {here} ({asset} event of {_when(newest)}) has 0 rows, "
                              f"nothing to do (plan is skipped)"))
    else:
        lines.append(("info", f"this run processes {here} (the newest {asset} event, "
                              f"{_when(newest)})"))
    candidates = [(item, "") for item in mine[:-1]]
    if newer is None:
        lines.append(("warning", f"the {asset} events after {_when(newest)} could not be read: "
                                 f"one announced after this run's events and before it started "
                                 f"gets no run until another {asset} event arrives (Airflow "
                                 f"3.3.2, apache/airflow#56050); if so, start {dag_id} by hand "
                                 f"with the input as Param {param}"))
    elif newer and started is not None and any(item["timestamp"] > _utc(started)
                                               for item in newer):
        for item in newer:
            lines.append(("info", f"{item['input'] or item['extra']} ({asset} event of "
                                  f"{_when(item)}, after this run's events): left to the next "
                                  f"Asset-triggered run of {dag_id}, which an event after this "
                                  f"run started has queued"))
    else:
        candidates += [(item, " (after this run's events, before it started: Airflow 3.3.2 "
                              "would start no run for it until another event, "
                              "apache/airflow#56050)") for item in newer or []]
    latest: dict[str, tuple[dict, str]] = {}
    for item, why in candidates:
        if not item["input"]:
            lines.append(("warning", f"the {asset} event of {_when(item)} names no {key!r} "
                                     f"(extra: {item['extra']}): not processed; start {dag_id} "
                                     f"by hand with the input as Param {param}"))
        else:
            latest[item["input"]] = (item, why)  # oldest first: the newest event of each input
    triggers = []
    for uri, (item, why) in latest.items():
        if uri == here:
            lines.append(("info", f"{uri} ({asset} event of {_when(item)}){why}: this run's "
                                  f"input, processed here"))
        elif item["rows"] == 0:
            lines.append(("info", f"{uri} ({asset} event of {_when(item)}){why}: 0 rows, "
                                  f"nothing to do"))
        elif mode == "log" or (out and nested_out is None):
            import json

            conf = json.dumps({param: uri, "out": own_out(uri)})
            because, after = (
                ("other_inputs is log, set by the run's conf, the Variable "
                 f"{dag_id} or the Param", " (its other settings are the Variable's when it "
                 "starts: after a main job, which sets the Variable while it runs, has ended)")
                if mode == "log" else
                (f"this run's out {out} (from the Variable {dag_id} or a Param) is every run's, "
                 "and a dataset in a folder inside it would be trained on as part of its "
                 "dataset", f" (or an out of its own outside {out})"))
            lines.append(("warning", f"{uri} ({asset} event of {_when(item)}){why}: no run "
                                     f"started ({because}): start {dag_id} by hand with the "
                                     f"conf {conf}{after}"))
        else:
            run_id = input_run_id(uri, item["timestamp"])
            note = f"{param} {uri}, announced by the {asset} event of {_when(item)}{why}"
            conf = {param: uri}
            where = ""
            if out:
                conf["out"] = nested_out(uri)
                where = f", out {conf['out']} (this run's out {out} is set)"
            triggers.append({"trigger_run_id": run_id, "conf": conf, "note": note})
            lines.append(("info", f"{uri} ({asset} event of {_when(item)}){why}: run {run_id} "
                                  f"of {dag_id}{where} (skipped if it exists already)"))
    return triggers, lines


#: the values of the Param `other_inputs` of multiplt_testgen and multiplt_translate
OTHER_INPUTS = ("run", "log")


def other_inputs_settings(dag_id: str, names, params, dag_run) -> tuple[str | None, str]:
    """(the run's `out`, None when unset; its `other_inputs`) resolved as `plan` resolves every
    setting (run_settings: the Params <- the Variable `dag_id` <- the run's conf, a key of the
    conf or the Variable that is not a Param of `names` refused). checks.BadParams on what plan
    would refuse too: such a key, a Variable that is not a JSON object, an `other_inputs` not in
    OTHER_INPUTS (null included). Reads the Variable: call it in a task."""
    from multiplt_pipelines.checks import BadParams

    # the Params as Airflow gives them (a manual run's conf already in them), over the schemas'
    # defaults for those not given (a caller outside Airflow may give none)
    base = ({key: schema["default"] for key, schema in names.items() if "default" in schema}
            if isinstance(names, dict) else {})
    settings, from_variable = run_settings(dag_id, {**base, **(params or {})}, dag_run, names)
    mode = settings.get("other_inputs", "run")
    if mode not in OTHER_INPUTS:
        where = f"the Variable {dag_id}" if "other_inputs" in from_variable else "the run"
        raise BadParams(f"Param other_inputs {mode!r} (from {where}): expected one of "
                        f"{', '.join(OTHER_INPUTS)}", ["other_inputs"])
    return settings.get("out") or None, mode


def other_input_runs(dag_id: str, dag_run, triggering_asset_events, inlet_events, inlet, *,
                     asset: str, key: str, param: str, params=None, data_uri: str = "",
                     default_out=None, nest: bool = True, log=None, names=None) -> list[dict]:
    """The `other_inputs` task of multiplt_testgen and multiplt_translate: other_inputs of this
    run, its log lines written to `log` (default: the task log), the newer events read from
    `inlet_events[inlet]` (the task's inlet: the Asset `asset`), keeping those no run of `dag_id`
    consumed. A run started by hand has none. `out` and `other_inputs` are resolved first, as
    plan resolves them (other_inputs_settings over `names`, the DAG's Params; default: the keys of
    `params`): what plan refuses fails this task (AirflowFailException). When `out` is set,
    another input's run gets `<out>/<input_name(input)>`
    (`nest`: testgen), or none and a WARNING with the conf to start it by hand, its `out`
    `default_out(input, data_uri)` (translate). With `other_inputs` "log", no input gets a run:
    each is named with that conf."""
    import logging

    from airflow.sdk.exceptions import AirflowFailException

    from multiplt_pipelines.checks import BadParams

    log = log or logging.getLogger("airflow.task")
    try:  # first: a setting plan refuses fails this task too, in a run started by hand as well
        out, mode = other_inputs_settings(dag_id, names if names is not None else list(params or {}),
                                          params, dag_run)
    except BadParams as reason:
        raise AirflowFailException(str(reason)) from None
    mine = _announced_inputs((e for events in (triggering_asset_events or {}).values()
                              for e in events), asset, key)
    if not mine:
        return []
    newest = mine[-1]["timestamp"]
    try:
        newer = [event for event in inlet_events[inlet].after(newest.isoformat())
                 if _utc(event.timestamp) > newest
                 and not any(run.dag_id == dag_id for run in event.created_dagruns or [])]
        newer = _announced_inputs(newer, asset, key)
    except Exception as error:  # noqa: BLE001 (Airflow's answer, e.g. HTTP 500: logged below)
        log.warning("reading the %s events after %s failed: %s", asset, newest.isoformat(),
                    error)
        newer = None

    def nested_out(uri: str) -> str:
        from multiplt_pipelines.testgen import input_name

        return f"{out.rstrip('/')}/{input_name(uri, data_uri)}"

    triggers, lines = other_inputs(dag_id, mine, newer, getattr(dag_run, "start_date", None),
                                   asset=asset, key=key, param=param, out=out,
                                   nested_out=nested_out if nest else None,
                                   own_out=lambda uri: default_out(uri, data_uri),
                                   mode=mode)
    for level, message in lines:
        getattr(log, level)(message)
    return triggers


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


def own_input_run(dag_run, triggering_asset_events, *, asset: str, key: str):
    """(input, its event's time, input_run_id) of a run started by `asset` events: the run that
    other_inputs of another run of the DAG starts for this run's input as announced by its newest
    event. None for a run with no `asset` event (started by hand, or by run_other_inputs), whose
    newest event names no input or announces 0 rows (plan fails or skips on it), or which is
    that run itself."""
    mine = _announced_inputs((e for events in (triggering_asset_events or {}).values()
                              for e in events), asset, key)
    if not mine or not mine[-1]["input"] or mine[-1]["rows"] == 0:
        return None
    newest = mine[-1]
    run_id = input_run_id(newest["input"], newest["timestamp"])
    if run_id == getattr(dag_run, "run_id", None):
        return None
    return newest["input"], newest["timestamp"], run_id


def processed_elsewhere(dag_id: str, dag_run, triggering_asset_events, ti, *, asset: str,
                        key: str) -> str | None:
    """Why this Asset-triggered run must not process its input, or None: other_inputs of another
    run of `dag_id` already started a run for the same input and event (own_input_run). That
    happens when the event came after that run's own events and before it started (in the
    seconds between its creation and its start, or before it started again after a Clear, which
    resets its start date): it took the event for one no run would take, while the event had
    queued this run. Asks Airflow through the task instance `ti` (its get_dr_count: the
    Execution API); None without `ti`."""
    own = own_input_run(dag_run, triggering_asset_events, asset=asset, key=key)
    if own is None or ti is None:
        return None
    uri, when, run_id = own
    if not ti.get_dr_count(dag_id=dag_id, run_ids=[run_id]):
        return None
    return (f"nothing to do here: {uri} (the {asset} event of {when.isoformat()}) is processed by "
            f"run {run_id} of {dag_id}, which another run's other_inputs started for it")


def generation_plan(dag_id: str, schemas: dict, resolve, require, make, *, params, dag_run,
                    triggering_asset_events, data_uri: str, local: bool, ti=None,
                    asset: str | None = None, key: str | None = None) -> dict:
    """The `plan` task of multiplt_testgen and multiplt_translate (`dag_id`, its Params
    `schemas`): the run's settings, `resolve(params, dag_run, triggering_asset_events)` ->
    (settings, the keys the Variable set), read once here; checked as a stage would check them
    (checks.generation; `local`: the stages run where this task runs) and by `require(settings,
    data_uri)` (its input named, and holding rows); then `make(settings, data_uri)`, what the
    task returns. Skipped (AirflowSkipException) when the input holds no row (EmptyInput), and
    when a run of the DAG started by other_inputs processes this run's input as announced by its
    newest `asset` event (key: the event's input; processed_elsewhere, asked through the task
    instance `ti`); failed without retry (AirflowFailException) on settings a stage would
    refuse, a value taken from the Variable named as such."""
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from multiplt_pipelines import checks

    if asset and key:
        reason = processed_elsewhere(dag_id, dag_run, triggering_asset_events, ti, asset=asset,
                                     key=key)
        if reason:
            raise AirflowSkipException(reason)
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


def chained_datasets(params: dict, events: list[dict], warn=None) -> tuple[dict, dict[str, str]]:
    """multiplt_finetune's (Params, {lang: dataset URI}): for a run started by dataset Asset
    events, the languages announced (the newest event of each) and each one's `dataset_uri`;
    for a manual run, Params `languages` and `dataset` (`{lang}` = each language code).
    Languages announced with 0 rows are left out; EmptyInput when none is left. An older event
    of a language announcing another dataset is not trained in this run: a warning (`warn`;
    default: the task log) names it and how to train it."""
    mine = [e for e in events if e["name"].startswith(DATASET_ASSET_PREFIX)]
    if not mine:
        return dict(params), {lang: params["dataset"].replace("{lang}", lang)
                              for lang in params["languages"]}
    newest, older = {}, []
    for event in mine:
        lang = (event["extra"] or {}).get("lang") or event["name"][len(DATASET_ASSET_PREFIX):]
        if lang in newest:
            older.append((lang, newest[lang]))
        newest[lang] = event
    import json

    named = set()
    for lang, event in older:
        uri = (event["extra"] or {}).get("dataset_uri")
        if (uri and uri != (newest[lang]["extra"] or {}).get("dataset_uri")
                and (event["extra"] or {}).get("rows") != 0 and (lang, uri) not in named):
            named.add((lang, uri))
            conf = json.dumps({"languages": [lang], "dataset": uri})
            _warn(warn, f"{lang}: the dataset {uri} of an older {event['name']} event of this run "
                        f"is not trained (this run trains {lang} on its newest event's "
                        f"dataset); to train it, start multiplt_finetune by hand with the conf "
                        f"{conf} (and a training_root of its own)")
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


def _warn(warn, message: str) -> None:
    if warn is None:
        import logging

        warn = logging.getLogger("airflow.task").warning
    warn(message)


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
