"""Every input announced to multiplt_testgen or multiplt_translate gets processed: a run takes
its newest event's input, and `other_inputs` starts a run of the DAG for each other one, among
its triggering events or (Airflow 3.3.2, apache/airflow#56050) announced after them but before
the run started, which no Asset-triggered run takes until another event arrives."""

from __future__ import annotations

import datetime
import re
import time
from types import SimpleNamespace

import pytest

from tests.dags.test_pipeline_plans import defaults, load_dag
from multiplt_pipelines import chain  # noqa: E402 (dags/ is on sys.path)
from multiplt_pipelines import params as schemas  # noqa: E402
from multiplt_pipelines import testgen as testgen_plans  # noqa: E402
from multiplt_pipelines import translation  # noqa: E402

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
ALLOWED_RUN_ID = re.compile(r"^[A-Za-z0-9_.~:+-]+$")  # Airflow's default allowed_run_id_pattern


def event(name: str, extra: dict, minute: float, dag_runs=()):
    """An Asset event as a task's triggering_asset_events or inlet_events holds it."""
    return SimpleNamespace(asset=SimpleNamespace(name=name, uri="file:///asset"), extra=extra,
                           timestamp=T0 + datetime.timedelta(minutes=minute),
                           created_dagruns=[SimpleNamespace(dag_id=d) for d in dag_runs])


class Inlets:
    """inlet_events: every event of the Asset, `.after(t)` those at or after t (as Airflow)."""

    def __init__(self, events=(), error: Exception | None = None):
        self.events, self.error = list(events), error

    def __getitem__(self, asset):
        return self

    def after(self, when: str):
        if self.error:
            raise self.error
        return [e for e in self.events if e.timestamp >= datetime.datetime.fromisoformat(when)]


def corpus(uri: str, minute: float, rows: int = 5, **kw):
    return event("multiplt_corpus_functions", {"functions_uri": uri, "rows": rows}, minute, **kw)


def run(minute_started: float | None = 30, conf=None):
    started = None if minute_started is None else T0 + datetime.timedelta(minutes=minute_started)
    return SimpleNamespace(conf=conf or {}, start_date=started, run_type="asset_triggered")


def mine(*events):
    return chain._announced_inputs(events, "multiplt_corpus_functions", "functions_uri")


def others(events, newer=(), started: float | None = 30):
    started = None if started is None else T0 + datetime.timedelta(minutes=started)
    return chain.other_inputs("multiplt_testgen", mine(*events),
                              None if newer is None else mine(*newer), started,
                              asset="multiplt_corpus_functions", key="functions_uri",
                              param="functions")


def test_every_other_input_of_the_triggering_events_gets_one_run():
    triggers, lines = others([corpus("s3://c/a", 1), corpus("s3://c/b", 2), corpus("s3://c/a", 3),
                              corpus("s3://c/c", 4)])
    # c (the newest) is this run's; a (twice: its newest event) and b get a run each
    assert [t["conf"] for t in triggers] == [{"functions": "s3://c/a"}, {"functions": "s3://c/b"}]
    three = T0 + datetime.timedelta(minutes=3)
    assert triggers[0]["trigger_run_id"] == chain.input_run_id("s3://c/a", three)
    assert all(ALLOWED_RUN_ID.match(t["trigger_run_id"]) and ".." not in t["trigger_run_id"]
               for t in triggers)
    assert "s3://c/b" in triggers[1]["note"]
    text = "\n".join(message for _, message in lines)
    assert "this run processes s3://c/c" in text
    assert all(f"s3://c/{x}" in text for x in "ab")
    # one input, announced twice: this run's, no other run
    assert others([corpus("s3://c/a", 1), corpus("s3://c/a", 2)])[0] == []
    # a run started by hand (no event) starts nothing
    assert others([]) == ([], [])


def test_the_run_id_is_stable_per_input_and_event_and_airflow_accepts_it():
    when = T0 + datetime.timedelta(seconds=1, microseconds=5)
    a = chain.input_run_id("s3://b/x..y/functions", when)
    assert a == chain.input_run_id("s3://b/x..y/functions", when.isoformat())
    later = when + datetime.timedelta(microseconds=1)
    assert a != chain.input_run_id("s3://b/x..y/functions", later)
    assert a != chain.input_run_id("s3://b/x__y/functions", when)  # made safe alike, hashed apart
    long = chain.input_run_id("file:///" + "d/" * 300 + "functions", when)
    for run_id in (a, long):
        assert ALLOWED_RUN_ID.match(run_id) and ".." not in run_id and len(run_id) <= 180


def test_empty_and_unnamed_inputs_get_no_run_and_are_named():
    no_uri = event("multiplt_corpus_functions", {"rows": 3}, 2)
    triggers, lines = others([corpus("s3://c/a", 1, rows=0), no_uri, corpus("s3://c/b", 3)])
    assert triggers == []
    assert ("info", "s3://c/a (multiplt_corpus_functions event of 2026-01-01T00:01:00+00:00): "
                    "0 rows, nothing to do") in lines
    assert any(level == "warning" and "names no 'functions_uri'" in message
               and "not processed" in message for level, message in lines)
    # the newest event names no input: plan fails, the others still get their runs
    triggers, lines = others([corpus("s3://c/a", 1), no_uri])
    assert [t["conf"] for t in triggers] == [{"functions": "s3://c/a"}]
    assert lines[0][0] == "warning" and "plan fails" in lines[0][1]


def test_events_after_the_run_s_own_get_runs_unless_the_next_run_takes_them():
    # announced before this run started (minute 30): no run takes them (Airflow 3.3.2)
    triggers, lines = others([corpus("s3://c/b", 2)], newer=[corpus("s3://c/c", 3),
                                                             corpus("s3://c/b", 4)])
    assert [t["conf"] for t in triggers] == [{"functions": "s3://c/c"}]  # b is this run's
    assert any("apache/airflow#56050" in message for _, message in lines)
    # one came after it started: it queued the next run, which takes them all
    triggers, lines = others([corpus("s3://c/b", 2)], newer=[corpus("s3://c/c", 3),
                                                             corpus("s3://c/d", 40)])
    assert triggers == []
    assert sum("left to the next Asset-triggered run" in message for _, message in lines) == 2
    # they could not be read: a WARNING says what may be lost and what to do
    triggers, lines = others([corpus("s3://c/b", 2)], newer=None)
    assert triggers == []
    assert any(level == "warning" and "start multiplt_testgen by hand" in message
               for level, message in lines)


def test_the_dag_tasks_start_a_run_per_other_input_and_that_run_plans_it(monkeypatch):
    import io
    import logging

    from airflow.sdk.exceptions import AirflowSkipException

    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_TESTGEN", '{"model": "tiny/model", "n": 2}')
    dag = load_dag("multiplt_testgen")
    assert [a.name for a in dag.get_task("other_inputs").inlets] == ["multiplt_corpus_functions"]
    trigger = dag.get_task("run_other_inputs")
    kwargs = trigger.partial_kwargs
    assert (kwargs["trigger_dag_id"], kwargs["skip_when_already_exists"],
            kwargs["reset_dag_run"]) == ("multiplt_testgen", True, False)
    assert "plan" not in dag.get_task("other_inputs").upstream_task_ids  # plan's skip stops none

    stdlib = corpus("file:///DATA/corpus/stdlib/functions", 1, rows=1352)
    home = corpus("file:///DATA/corpus/_home_me_code/functions", 2, rows=40)
    late = corpus("file:///DATA/corpus/late/functions", 3, dag_runs=["multiplt_corpus"])
    taken = corpus("file:///DATA/corpus/taken/functions", 4, dag_runs=["multiplt_testgen"])
    triggering = {"multiplt_corpus_functions": [stdlib, home]}
    # the task log: a handler on the task logger itself (whether it propagates, and where its
    # own handlers write, depends on what configured logging before this test)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    task_log = logging.getLogger("airflow.task")
    task_log.addHandler(handler)
    level = task_log.level
    task_log.setLevel(logging.INFO)
    try:
        triggers = dag.get_task("other_inputs").python_callable(
            "file:///DATA", dag_run=run(), triggering_asset_events=triggering,
            inlet_events=Inlets([stdlib, home, late, taken]))
    finally:
        task_log.removeHandler(handler)
        task_log.setLevel(level)
    logged = stream.getvalue()
    # stdlib (older, batched) and late (after the run's events, before it started) get runs;
    # taken was consumed by another run of multiplt_testgen
    assert [t["conf"]["functions"] for t in triggers] == ["file:///DATA/corpus/stdlib/functions",
                                                          "file:///DATA/corpus/late/functions"]
    assert "this run processes file:///DATA/corpus/_home_me_code/functions" in logged
    assert "stdlib/functions" in logged and "taken" not in logged

    plan = dag.get_task("plan").python_callable
    params = defaults(testgen_plans.PARAMS, shards=1)
    planned = plan("file:///DATA", params=params, dag_run=run(), triggering_asset_events=triggering)
    assert planned["settings"]["functions"] == "file:///DATA/corpus/_home_me_code/functions"
    for t in triggers:  # each triggered run (conf, no event) plans its input into its own out
        got = plan("file:///DATA", params={**params, **t["conf"]}, dag_run=run(conf=t["conf"]),
                   triggering_asset_events={})
        assert got["settings"]["functions"] == t["conf"]["functions"]
        assert got["settings"]["out"] == "file:///DATA/testgen/" + t["conf"]["functions"][
            len("file:///DATA/"):].replace("/", "_")
        # and it starts nothing more
        assert dag.get_task("other_inputs").python_callable(
            "file:///DATA", dag_run=run(conf=t["conf"]), triggering_asset_events={},
            inlet_events=Inlets()) == []

    # the newest input is empty: plan is skipped, the older input still gets its run
    empty = corpus("file:///DATA/corpus/empty/functions", 5, rows=0)
    with pytest.raises(AirflowSkipException):
        plan("file:///DATA", params=params, dag_run=run(),
             triggering_asset_events={"multiplt_corpus_functions": [stdlib, empty]})
    triggers = dag.get_task("other_inputs").python_callable(
        "file:///DATA", dag_run=run(),
        triggering_asset_events={"multiplt_corpus_functions": [stdlib, empty]},
        inlet_events=Inlets(error=RuntimeError("HTTP 500")))
    assert [t["conf"] for t in triggers] == [{"functions": "file:///DATA/corpus/stdlib/functions"}]


def test_translate_starts_a_run_per_other_tests_input(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_TRANSLATE", '{"model": "tiny/translator"}')
    dag = load_dag("multiplt_translate")
    assert [a.name for a in dag.get_task("other_inputs").inlets] == ["multiplt_testgen_tests"]
    assert dag.get_task("run_other_inputs").partial_kwargs["trigger_dag_id"] == "multiplt_translate"

    def tests(uri, minute):
        return event("multiplt_testgen_tests", {"tests_uri": uri, "rows": 3}, minute)

    a, b, c = (tests(f"s3://b/tg/{x}/tests", minute) for minute, x in enumerate("abc", 1))
    triggers = dag.get_task("other_inputs").python_callable(
        "file:///DATA", dag_run=run(), triggering_asset_events={"multiplt_testgen_tests": [a, b]},
        inlet_events=Inlets([a, b, c]))
    assert [t["conf"] for t in triggers] == [{"tests": "s3://b/tg/a/tests"},
                                             {"tests": "s3://b/tg/c/tests"}]
    params = defaults(translation.PARAMS, languages=["lua"], shards=1)
    got = dag.get_task("plan").python_callable(
        "file:///DATA", params={**params, **triggers[0]["conf"]},
        dag_run=run(conf=triggers[0]["conf"]), triggering_asset_events={})
    assert got["settings"]["tests"] == "s3://b/tg/a/tests"


def test_a_set_out_gives_each_other_testgen_input_a_folder_of_its_own(monkeypatch):
    """The Variable sets `out` (as the main job does): each triggered run would read it too and
    plan the triggering run's folder, which `multiplt testgen` refuses (another input's rows)."""
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_TESTGEN",
                       '{"model": "tiny/model", "n": 2, "out": "file:///DATA/job/testgen/"}')
    dag = load_dag("multiplt_testgen")
    a = corpus("file:///DATA/corpus/a/functions", 1)
    b = corpus("s3://elsewhere/b/functions", 2)
    c = corpus("file:///DATA/corpus/c/functions", 3)
    triggering = {"multiplt_corpus_functions": [a, b, c]}
    params = defaults(testgen_plans.PARAMS, shards=1)
    triggers = dag.get_task("other_inputs").python_callable(
        "file:///DATA", params=params, dag_run=run(), triggering_asset_events=triggering,
        inlet_events=Inlets([a, b, c]))
    assert [t["conf"] for t in triggers] == [
        {"functions": "file:///DATA/corpus/a/functions",
         "out": "file:///DATA/job/testgen/corpus_a_functions"},
        {"functions": "s3://elsewhere/b/functions",
         "out": "file:///DATA/job/testgen/" + testgen_plans.input_name(
             "s3://elsewhere/b/functions", "file:///DATA")}]
    plan = dag.get_task("plan").python_callable
    mine = plan("file:///DATA", params=params, dag_run=run(), triggering_asset_events=triggering)
    assert mine["settings"]["out"] == "file:///DATA/job/testgen/"
    for t in triggers:  # the conf's out wins over the Variable's
        got = plan("file:///DATA", params={**params, **t["conf"]}, dag_run=run(conf=t["conf"]),
                   triggering_asset_events={})
        assert got["settings"]["out"] == t["conf"]["out"]
        assert got["shards"][0]["generate"][got["shards"][0]["generate"].index("--out") + 1] \
            == t["conf"]["out"]
    # the conf of a run sets out (a Param, which Airflow puts in the run's params): the same;
    # the Variable without out: no out in the conf
    triggers = dag.get_task("other_inputs").python_callable(
        "file:///DATA", params={**params, "out": "s3://b/mine"},
        dag_run=run(conf={"out": "s3://b/mine"}),
        triggering_asset_events={"multiplt_corpus_functions": [a, c]}, inlet_events=Inlets([a, c]))
    assert triggers[0]["conf"]["out"] == "s3://b/mine/corpus_a_functions"
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_TESTGEN", '{"model": "tiny/model", "out": null}')
    triggers = dag.get_task("other_inputs").python_callable(
        "file:///DATA", params=params, dag_run=run(),
        triggering_asset_events={"multiplt_corpus_functions": [a, c]}, inlet_events=Inlets([a, c]))
    assert [t["conf"] for t in triggers] == [{"functions": "file:///DATA/corpus/a/functions"}]


def test_a_set_out_starts_no_other_translate_run_and_says_how_to_start_it(monkeypatch):
    """translate's out holds the dataset whose folder its events announce and `multiplt train`
    reads recursively: no folder of another input's run may lie inside it, so no run starts; a
    WARNING gives the conf that starts one by hand, in the input's default folder."""
    import json

    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_TRANSLATE",
                       '{"model": "tiny/translator", "out": "file:///DATA/job/translate"}')
    dag = load_dag("multiplt_translate")
    a, b = (event("multiplt_testgen_tests", {"tests_uri": f"file:///DATA/testgen/{x}/tests",
                                             "rows": 3}, minute)
            for minute, x in enumerate("ab", 1))
    logs: list[str] = []
    log = SimpleNamespace(**{level: (lambda msg, *args, level=level: logs.append(
        f"{level} {msg % args if args else msg}")) for level in ("info", "warning")})
    triggers = chain.other_input_runs(
        "multiplt_translate", run(), {"multiplt_testgen_tests": [a, b]}, Inlets([a, b]), None,
        asset="multiplt_testgen_tests", key="tests_uri", param="tests",
        params=defaults(translation.PARAMS), data_uri="file:///DATA",
        default_out=translation.default_out, nest=False, log=log)
    assert triggers == []
    [warning] = [line for line in logs if line.startswith("warning")]
    conf = {"tests": "file:///DATA/testgen/a/tests",
            "out": "file:///DATA/translate/testgen_a_tests"}
    assert f"start multiplt_translate by hand with the conf {json.dumps(conf)}" in warning
    assert "file:///DATA/job/translate" in warning
    # the DAG's task does the same
    assert dag.get_task("other_inputs").python_callable(
        "file:///DATA", params=defaults(translation.PARAMS), dag_run=run(),
        triggering_asset_events={"multiplt_testgen_tests": [a, b]},
        inlet_events=Inlets([a, b])) == []
    # without out: a run, as before
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_TRANSLATE", '{"model": "tiny/translator"}')
    assert [t["conf"] for t in dag.get_task("other_inputs").python_callable(
        "file:///DATA", params=defaults(translation.PARAMS), dag_run=run(),
        triggering_asset_events={"multiplt_testgen_tests": [a, b]},
        inlet_events=Inlets([a, b]))] == [{"tests": "file:///DATA/testgen/a/tests"}]


@pytest.mark.parametrize("dag_id", ["multiplt_testgen", "multiplt_translate"])
def test_other_inputs_log_starts_no_run_and_names_each_input_with_its_conf(dag_id, monkeypatch):
    """The main job's Variable sets other_inputs log: an input announced to its run besides the
    job's own (a corpus queued before the job began) gets no run; a WARNING names it with the
    conf that starts it by hand in its default folder. A run's conf overrides the Variable, and a
    value that is neither run nor log fails the task and the plan."""
    import json

    from airflow.sdk.exceptions import AirflowFailException

    testgen = dag_id == "multiplt_testgen"
    asset, key, param = (("multiplt_corpus_functions", "functions_uri", "functions") if testgen
                         else ("multiplt_testgen_tests", "tests_uri", "tests"))
    schemas_of = testgen_plans.PARAMS if testgen else translation.PARAMS
    variable = f"AIRFLOW_VAR_{dag_id.upper()}"
    monkeypatch.setenv(variable, json.dumps({"model": "tiny/m", "other_inputs": "log"}))
    dag = load_dag(dag_id)
    old, new = (event(asset, {key: f"file:///DATA/x/{name}", "rows": 3}, minute)
                for minute, name in ((1, "old"), (2, "new")))
    logs: list[str] = []
    log = SimpleNamespace(**{level: (lambda msg, *args, level=level: logs.append(
        f"{level} {msg % args if args else msg}")) for level in ("info", "warning")})
    default_out = testgen_plans.default_out if testgen else translation.default_out
    triggers = chain.other_input_runs(
        dag_id, run(), {asset: [old, new]}, Inlets([old, new]), None, asset=asset, key=key,
        param=param, params=defaults(schemas_of), data_uri="file:///DATA",
        default_out=default_out, nest=testgen, log=log)
    assert triggers == []
    [warning] = [line for line in logs if line.startswith("warning")]
    conf = {param: "file:///DATA/x/old", "out": default_out("file:///DATA/x/old", "file:///DATA")}
    assert conf["out"] == ("file:///DATA/testgen/x_old" if testgen else "file:///DATA/translate/x_old")
    assert f"start {dag_id} by hand with the conf {json.dumps(conf)}" in warning
    assert "other_inputs is log" in warning
    assert any("this run processes file:///DATA/x/new" in line for line in logs)
    # the DAG's task reads the Variable
    task = dag.get_task("other_inputs").python_callable
    assert task("file:///DATA", params=defaults(schemas_of), dag_run=run(),
                triggering_asset_events={asset: [old, new]}, inlet_events=Inlets([old, new])) == []
    # a run's conf wins over the Variable: run starts the other input's run
    [trigger] = task("file:///DATA", params=defaults(schemas_of),
                     dag_run=run(conf={"other_inputs": "run"}),
                     triggering_asset_events={asset: [old, new]}, inlet_events=Inlets([old, new]))
    assert trigger["conf"] == {param: "file:///DATA/x/old"}
    # neither run nor log: the task fails (no retry) naming the value; plan refuses it too
    monkeypatch.setenv(variable, json.dumps({"model": "tiny/m", "other_inputs": "drop"}))
    with pytest.raises(AirflowFailException, match="other_inputs 'drop'.*run, log"):
        task("file:///DATA", params=defaults(schemas_of), dag_run=run(),
             triggering_asset_events={asset: [old, new]}, inlet_events=Inlets([old, new]))
    with pytest.raises(AirflowFailException, match="other_inputs"):
        dag.get_task("plan").python_callable(
            "file:///DATA", params=defaults(schemas_of, languages=["lua"]) if not testgen
            else defaults(schemas_of), dag_run=run(), triggering_asset_events={asset: [new]})



@pytest.mark.parametrize("variable", ['{"model": "tiny/m", "other_inputs": null}',
                                      '["not", "an", "object"]', '"log"',
                                      '{"model": "tiny/m", "other_inputz": "log"}',
                                      '{"model": "tiny/m", "other_inputs": "drop"}'])
@pytest.mark.parametrize("dag_id", ["multiplt_testgen", "multiplt_translate"])
def test_other_inputs_fails_on_a_variable_plan_refuses_and_starts_nothing(dag_id, variable,
                                                                          monkeypatch):
    """other_inputs resolves `out` and `other_inputs` as plan does: a Variable plan refuses (not
    an object, a key that is no Param, an other_inputs not run or log) fails the task without
    retry, in a run started by events and in one started by hand, instead of starting runs that
    would all fail at their plan."""
    from airflow.sdk.exceptions import AirflowFailException

    testgen = dag_id == "multiplt_testgen"
    asset, key = (("multiplt_corpus_functions", "functions_uri") if testgen
                  else ("multiplt_testgen_tests", "tests_uri"))
    schemas_of = testgen_plans.PARAMS if testgen else translation.PARAMS
    monkeypatch.setenv(f"AIRFLOW_VAR_{dag_id.upper()}", variable)
    task = load_dag(dag_id).get_task("other_inputs").python_callable
    old, new = (event(asset, {key: f"file:///DATA/x/{name}", "rows": 3}, minute)
                for minute, name in ((1, "old"), (2, "new")))
    for events in ({asset: [old, new]}, {}):
        with pytest.raises(AirflowFailException):
            task("file:///DATA", params=defaults(schemas_of), dag_run=run(),
                 triggering_asset_events=events, inlet_events=Inlets([old, new]))


class _Counts:
    """A task instance whose get_dr_count answers from `existing` run ids (and records asks)."""

    def __init__(self, *existing):
        self.existing, self.asked = set(existing), []

    def get_dr_count(self, dag_id, run_ids=None, **kw):
        self.asked.append((dag_id, list(run_ids or [])))
        return sum(run_id in self.existing for run_id in run_ids or [])


@pytest.mark.parametrize("dag_id", ["multiplt_testgen", "multiplt_translate"])
def test_an_asset_triggered_run_skips_an_input_a_triggered_run_processes(dag_id, monkeypatch):
    """A run cleared after it ended (Airflow resets its start date) or between its creation and
    its start triggers a run for an event that the next Asset-triggered run takes as its newest:
    that run's plan is skipped, naming the other run, so the input is processed once."""
    from airflow.sdk.exceptions import AirflowSkipException

    monkeypatch.delenv(f"AIRFLOW_VAR_{dag_id.upper()}", raising=False)
    dag = load_dag(dag_id)
    plan = dag.get_task("plan").python_callable
    if dag_id == "multiplt_testgen":
        asset, key, param, schema = ("multiplt_corpus_functions", "functions_uri", "functions",
                                     testgen_plans.PARAMS)
    else:
        asset, key, param, schema = ("multiplt_testgen_tests", "tests_uri", "tests",
                                     translation.PARAMS)
    params = defaults(schema, shards=1)
    e = event(asset, {key: "file:///DATA/in/e", "rows": 4}, 5)
    d = event(asset, {key: "file:///DATA/in/d", "rows": 4}, 4)
    taken = chain.input_run_id("file:///DATA/in/e", e.timestamp)
    asset_run = SimpleNamespace(**vars(run()), run_id="asset_triggered__2026")
    ti = _Counts(taken)
    with pytest.raises(AirflowSkipException, match=f"processed by run {taken} of {dag_id}"):
        plan("file:///DATA", params=params, dag_run=asset_run,
             triggering_asset_events={asset: [d, e]}, ti=ti)
    assert ti.asked == [(dag_id, [taken])]
    # no such run: the input is this run's
    planned = plan("file:///DATA", params=params, dag_run=asset_run,
                   triggering_asset_events={asset: [d, e]}, ti=_Counts())
    assert planned["settings"][param] == "file:///DATA/in/e"
    # that run itself (conf, no event) and a run started by hand never skip themselves
    for conf_run in (SimpleNamespace(**vars(run(conf={param: "file:///DATA/in/e"})), run_id=taken),
                     SimpleNamespace(**vars(run(conf={param: "file:///DATA/in/e"})),
                                     run_id="manual__1")):
        ti = _Counts(taken, "manual__1")
        got = plan("file:///DATA", params={**params, param: "file:///DATA/in/e"},
                   dag_run=conf_run, triggering_asset_events={}, ti=ti)
        assert got["settings"][param] == "file:///DATA/in/e" and ti.asked == []
    # the same input announced again later: a new event, a new run id, processed here
    again = event(asset, {key: "file:///DATA/in/e", "rows": 4}, 6)
    planned = plan("file:///DATA", params=params, dag_run=asset_run,
                   triggering_asset_events={asset: [e, again]}, ti=_Counts(taken))
    assert planned["settings"][param] == "file:///DATA/in/e"


# ---- against Airflow 3.3.2's own scheduler code and database -----------------------------------

def _scheduled_testgen(monkeypatch, tmp_path):
    """(a scheduler runner, the DAG): multiplt_testgen synced to the session's database and
    unpaused, with its data under tmp_path and no Variable of its own."""
    from sqlalchemy import update

    from airflow.jobs.job import Job
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    monkeypatch.setenv("AIRFLOW__MULTIPLT__DATA_URI", f"file://{tmp_path}/runs")
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RESULTS_STORE", f"file://{tmp_path}/results.parquet")
    monkeypatch.delenv("AIRFLOW_VAR_MULTIPLT_TESTGEN", raising=False)
    _sync_dags()
    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == "multiplt_testgen")
                        .values(is_paused=False))
    return SchedulerJobRunner(job=Job(), num_runs=1), load_dag("multiplt_testgen")


def _sync_dags():
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        sync_bag_to_db(bag, bundle.name, bundle.version)


def _scheduler_loop(runner):
    """What one scheduler loop does to create Asset-triggered runs."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query, triggered = DagModel.dags_needing_dagruns(session)
        models = [d for d in query.all() if d.dag_id in triggered]
        runner._create_dag_runs_asset_triggered(dag_models=models, session=session)


def _announce(uri: str):
    """multiplt_corpus's announce: an event of the corpus functions Asset."""
    from sqlalchemy import select

    from airflow.assets.manager import asset_manager
    from airflow.models.asset import AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        asset = session.scalar(select(AssetModel).where(
            AssetModel.name == "multiplt_corpus_functions", AssetModel.active.has()))
        asset_manager.register_asset_change(asset=asset, extra={"functions_uri": uri, "rows": 5},
                                            session=session)
    time.sleep(0.05)


def _set_state(run_id: str, state: str) -> None:
    from sqlalchemy import update

    from airflow.models.dagrun import DagRun
    from airflow.sdk import timezone
    from airflow.utils.session import create_session

    values = {"state": state}
    if state == "running":
        values["start_date"] = timezone.utcnow()
    with create_session() as session:
        session.execute(update(DagRun).where(DagRun.dag_id == "multiplt_testgen",
                                             DagRun.run_id == run_id).values(**values))
    time.sleep(0.05)


def _asset_runs() -> list[str]:
    from sqlalchemy import select

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return list(session.scalars(select(DagRun.run_id).where(
            DagRun.dag_id == "multiplt_testgen", DagRun.run_type == "asset_triggered")
            .order_by(DagRun.id)))


class _DbInlets:
    """inlet_events read from the database, as the Execution API gives them."""

    def __getitem__(self, asset):
        return self

    def after(self, when: str):
        from sqlalchemy import select

        from airflow.models.asset import AssetEvent, AssetModel
        from airflow.utils.session import create_session

        with create_session() as session:
            events = session.scalars(select(AssetEvent).join(AssetEvent.asset).where(
                AssetModel.name == "multiplt_corpus_functions",
                AssetEvent.timestamp >= datetime.datetime.fromisoformat(when))
                .order_by(AssetEvent.timestamp)).all()
            return [SimpleNamespace(asset=SimpleNamespace(name=e.asset.name, uri=e.asset.uri),
                                    extra=dict(e.extra), timestamp=e.timestamp,
                                    created_dagruns=[SimpleNamespace(dag_id=r.dag_id)
                                                     for r in e.created_dagruns])
                    for e in events]


class _DbTi:
    """The task instance's get_dr_count, answered as the Execution API answers it."""

    @staticmethod
    def get_dr_count(dag_id: str, run_ids=None, **kw) -> int:
        from airflow.api_fastapi.execution_api.routes.dag_runs import get_dr_count
        from airflow.utils.session import create_session

        with create_session() as session:
            return get_dr_count(dag_id, session, run_ids=run_ids)


def _run_tasks(dag, run_id: str) -> tuple[str | None, list[str]]:
    """What `plan` and `other_inputs` of the run do: (plan's input, None when plan is skipped;
    the inputs of the runs triggered, each through Airflow's trigger_dag, skipped when its run id
    exists, as TriggerDagRunOperator's skip_when_already_exists)."""
    from sqlalchemy import select

    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.sdk.exceptions import AirflowSkipException
    from airflow.exceptions import DagRunAlreadyExists
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    with create_session() as session:
        dr = session.scalar(select(DagRun).where(DagRun.dag_id == "multiplt_testgen",
                                                 DagRun.run_id == run_id))
        dag_run = SimpleNamespace(conf=dict(dr.conf or {}), start_date=dr.start_date,
                                  run_type=dr.run_type, run_id=run_id)
        triggering: dict = {}
        for e in dr.consumed_asset_events:
            triggering.setdefault(e.asset.name, []).append(SimpleNamespace(
                asset=SimpleNamespace(name=e.asset.name, uri=e.asset.uri), extra=dict(e.extra),
                timestamp=e.timestamp))
    try:  # plan's input, or None when plan is skipped (another run processes it)
        mine = dag.get_task("plan").python_callable(
            "file:///DATA", params=defaults(testgen_plans.PARAMS), dag_run=dag_run,
            triggering_asset_events=triggering, ti=_DbTi())["settings"]["functions"]
    except AirflowSkipException as skipped:
        print(f"plan of {run_id} skipped: {skipped}")
        mine = None
    triggers = dag.get_task("other_inputs").python_callable(
        "file:///DATA", dag_run=dag_run, triggering_asset_events=triggering,
        inlet_events=_DbInlets())
    started = []
    for t in triggers:
        try:
            trigger_dag("multiplt_testgen", triggered_by=DagRunTriggeredByType.OPERATOR,
                        run_type=DagRunType.OPERATOR_TRIGGERED, run_id=t["trigger_run_id"],
                        conf=t["conf"], note=t["note"], replace_microseconds=False)
        except DagRunAlreadyExists:
            continue
        # the triggered run, once it runs: its conf is its input, it triggers nothing more
        conf_run = SimpleNamespace(conf=t["conf"], start_date=None, run_type="operator_triggered")
        settings_of, _ = testgen_plans.resolved_params(  # Airflow puts the conf in the params
            defaults(testgen_plans.PARAMS, **t["conf"]), conf_run, {})
        assert dag.get_task("other_inputs").python_callable(
            "file:///DATA", dag_run=conf_run, triggering_asset_events={},
            inlet_events=_DbInlets()) == []
        started.append(settings_of["functions"])
        _set_state(t["trigger_run_id"], "success")
    return mine, started


def test_with_airflow_s_scheduler_every_announced_corpus_is_processed_once(airflow_db, tmp_path,
                                                                            monkeypatch):
    """multiplt_testgen works on corpus A while corpora B and C are announced: Airflow 3.3.2
    starts one run on B alone, and none on C until another corpus, D, is announced (then one on
    C and D). Every corpus must be processed, once."""
    runner, dag = _scheduled_testgen(monkeypatch, tmp_path)
    processed: list[str] = []

    def work(run_id: str) -> None:
        _set_state(run_id, "running")
        mine, started = _run_tasks(dag, run_id)
        processed.extend([mine, *started])

    _announce("file:///c/a/functions")
    _scheduler_loop(runner)
    [first] = _asset_runs()
    work(first)
    _announce("file:///c/b/functions")  # while A works
    _scheduler_loop(runner)
    _announce("file:///c/c/functions")
    _scheduler_loop(runner)
    assert _asset_runs() == [first]
    _set_state(first, "success")
    for _ in range(3):
        _scheduler_loop(runner)
    [second] = _asset_runs()[1:]  # Airflow 3.3.2: B alone, C in no run
    work(second)  # processes B, and starts a run for C
    assert processed == ["file:///c/a/functions", "file:///c/b/functions", "file:///c/c/functions"]
    _set_state(second, "success")

    _announce("file:///c/d/functions")
    _scheduler_loop(runner)
    [third] = _asset_runs()[2:]  # C and D: D here, C's run exists already (skipped)
    work(third)
    # an event after the third run started: left to the next run, which takes it
    _announce("file:///c/e/functions")
    mine, started = _run_tasks(dag, third)  # a retry of the third run's tasks sees E
    assert started == []
    _set_state(third, "success")
    _scheduler_loop(runner)
    [fourth] = _asset_runs()[3:]
    work(fourth)
    assert sorted(processed) == [f"file:///c/{x}/functions" for x in "abcde"]


def test_finetune_names_an_older_dataset_of_a_language_it_does_not_train():
    events = [{"name": "multiplt_dataset_lua", "uri": "file:///a",
               "extra": {"dataset_uri": uri, "lang": "lua", "rows": 4}}
              for uri in ("s3://t/old", "s3://t/old", "s3://t/new", "s3://t/new")]
    warned: list[str] = []
    params = defaults(schemas.FINETUNE)
    _, datasets = chain.chained_datasets(params, events, warn=warned.append)
    assert datasets == {"lua": "s3://t/new"}
    assert len(warned) == 1 and "s3://t/old" in warned[0] and "not trained" in warned[0]
    assert '{"languages": ["lua"], "dataset": "s3://t/old"}' in warned[0]
