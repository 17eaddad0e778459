"""The chain corpus -> testgen -> translate -> finetune: each Asset event names the URI and
identity of what it announces, a run started by an event takes its input from the event's extra
(a manual run from its Params), and an empty input or output stops the chain with a message."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import pytest

from tests.dags.test_pipeline_plans import defaults, load_dag
from multiplt_pipelines import chain  # noqa: E402 (dags/ is on sys.path)
from multiplt_pipelines import params as schemas  # noqa: E402
from multiplt_pipelines import testgen as testgen_plans  # noqa: E402
from multiplt_pipelines import translation  # noqa: E402
from multiplt_pipelines.corpus import functions_announcement  # noqa: E402
from multiplt_pipelines.plans import training_plan  # noqa: E402

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def event(name: str, extra: dict, minute: int = 0, uri: str = "file:///asset"):
    """An Airflow AssetEvent as a task's `triggering_asset_events` holds it (the fields read)."""
    return SimpleNamespace(asset=SimpleNamespace(name=name, uri=uri), extra=extra,
                           timestamp=T0 + datetime.timedelta(minutes=minute))


def triggering(*events) -> dict:
    out: dict = {}
    for e in events:
        out.setdefault(e.asset.name, []).append(e)
    return out


def test_asset_events_are_flattened_oldest_first_and_once():
    new = event("a", {"k": 2}, minute=5)
    old = event("a", {"k": 1}, minute=1)
    other = event("b", {"k": 3}, minute=3)
    got = chain.asset_events({"a": [new, old, new], "b": [other]})
    assert [e["extra"]["k"] for e in got] == [1, 3, 2]
    assert got[0] == {"name": "a", "uri": "file:///asset", "extra": {"k": 1}}
    assert chain.asset_events(None) == []


def test_an_event_run_takes_its_input_from_the_newest_event_a_manual_run_from_params():
    params = {"functions": None, "n": 5}
    manual = chain.chained_input(params, [], asset="f", key="functions_uri", param="functions")
    assert manual == params
    events = chain.asset_events(triggering(
        event("f", {"functions_uri": "s3://b/old/functions", "rows": 3}, minute=1),
        event("f", {"functions_uri": "s3://b/new/functions", "rows": 9}, minute=2),
        event("other", {"functions_uri": "s3://b/wrong"}, minute=3)))
    got = chain.chained_input(params, events, asset="f", key="functions_uri", param="functions")
    assert got == {"functions": "s3://b/new/functions", "n": 5}
    # given Params lose to the event: an event-started run never reads a guessed or stale path
    got = chain.chained_input({"functions": "s3://b/param"}, events, asset="f",
                              key="functions_uri", param="functions")
    assert got["functions"] == "s3://b/new/functions"


def test_an_event_without_the_uri_is_an_error_and_one_with_zero_rows_is_empty_input():
    no_uri = chain.asset_events(triggering(event("f", {"rows": 3})))
    with pytest.raises(ValueError, match="carries no 'functions_uri'"):
        chain.chained_input({}, no_uri, asset="f", key="functions_uri", param="functions")
    empty = chain.asset_events(triggering(event("f", {"functions_uri": "s3://b/f", "rows": 0})))
    with pytest.raises(chain.EmptyInput, match="s3://b/f with 0 rows"):
        chain.chained_input({}, empty, asset="f", key="functions_uri", param="functions")


def test_finetune_trains_each_announced_language_on_its_dataset_uri():
    params = defaults(schemas.FINETUNE, languages=["rkt", "lua"], dataset="s3://d/{lang}.parquet")
    manual, datasets = chain.chained_datasets(params, [])
    assert manual["languages"] == ["rkt", "lua"]
    assert datasets == {"rkt": "s3://d/rkt.parquet", "lua": "s3://d/lua.parquet"}

    events = chain.asset_events(triggering(
        event("multiplt_dataset_lua", {"dataset_uri": "s3://t/old", "lang": "lua", "rows": 4}, 1),
        event("multiplt_dataset_lua", {"dataset_uri": "s3://t/new", "lang": "lua", "rows": 5}, 2),
        event("multiplt_dataset_jl", {"dataset_uri": "s3://t/new", "lang": "jl", "rows": 0}, 2),
        event("multiplt_dataset_r", {"dataset_uri": "s3://t/r", "lang": "r", "rows": 7}, 3)))
    settings, datasets = chain.chained_datasets(params, events)
    assert settings["languages"] == ["lua", "r"]  # announced ones only; jl had 0 rows
    assert datasets == {"lua": "s3://t/new", "r": "s3://t/r"}
    entries = training_plan({**settings, "datasets": datasets}, "s3://b/runs")
    assert [(e["lang"], e["dataset"]) for e in entries] == [("lua", "s3://t/new"), ("r", "s3://t/r")]
    for entry in entries:
        argv = entry["train"]
        assert argv[argv.index("--dataset") + 1] == entry["dataset"]
        assert argv[argv.index("--lang") + 1] == entry["lang"]

    only_empty = chain.asset_events(triggering(
        event("multiplt_dataset_jl", {"dataset_uri": "s3://t", "lang": "jl", "rows": 0})))
    with pytest.raises(chain.EmptyInput, match="jl announce 0 rows"):
        chain.chained_datasets(params, only_empty)


def _funnel(path, rows: int) -> None:
    from multiplt import storage

    storage.write_json(str(path / "funnel.json"), {"steps": [
        {"name": "input", "in": 4, "out": 4}, {"name": "last", "in": 4, "out": rows}]})


def test_announcements_name_uri_identity_and_rows_and_refuse_empty_outputs(tmp_path):
    from multiplt import storage

    out = tmp_path / "corpus"
    out.mkdir()
    _funnel(out, 3)
    extra = functions_announcement(str(out), "stdlib")
    assert extra == {"functions_uri": f"{out}/functions", "source": "stdlib", "rows": 3,
                     "funnel_uri": f"{out}/funnel.json"}
    _funnel(out, 0)
    with pytest.raises(chain.EmptyInput, match="corpus kept 0 rows"):
        functions_announcement(str(out), "stdlib")

    data_uri = f"file://{tmp_path}/runs"
    params = defaults(testgen_plans.PARAMS, functions="s3://b/c/functions", model="tiny")
    tg = f"{data_uri}/testgen/s3_b_c_functions"  # the default out of these functions
    storage.write_json(f"{tg}/funnel.json", {"steps": [{"name": "x", "in": 2, "out": 2}]})
    assert testgen_plans.tests_announcement(params, data_uri) == {
        "tests_uri": f"{tg}/tests", "functions_uri": "s3://b/c/functions",
        "model": "tiny", "rows": 2, "funnel_uri": f"{tg}/funnel.json"}
    storage.write_json(f"{tg}/funnel.json", {"steps": [{"name": "x", "in": 2, "out": 0}]})
    with pytest.raises(chain.EmptyInput, match="testgen kept 0 rows"):
        testgen_plans.tests_announcement(params, data_uri)

    tparams = defaults(translation.PARAMS, tests="s3://b/t/tests", model="tiny")
    tr = f"{data_uri}/translate/s3_b_t_tests"  # the default out of these tests
    storage.write_json(f"{tr}/funnel.json",
                       {"lua": {"after_rouge_l": 6}, "rkt": {"after_rouge_l": 0}})
    lua = translation.dataset_announcement(tparams, data_uri, "lua")
    assert {k: lua[k] for k in ("dataset_uri", "lang", "split", "rows", "tests_uri", "model")} == {
        "dataset_uri": tr, "lang": "lua", "split": "lua", "rows": 6,
        "tests_uri": "s3://b/t/tests", "model": "tiny"}
    for lang in ("rkt", "jl"):  # 0 kept rows, or absent from the funnel
        with pytest.raises(chain.EmptyInput, match=f"translate {lang} kept 0 rows"):
            translation.dataset_announcement(tparams, data_uri, lang)


def test_dags_are_chained_by_assets_and_only_announce_tasks_emit_events():
    def outlets(dag, task_id):
        return [a.name for a in getattr(dag.get_task(task_id), "outlets", [])]

    corpus, testgen = load_dag("multiplt_corpus"), load_dag("multiplt_testgen")
    translate, finetune = load_dag("multiplt_translate"), load_dag("multiplt_finetune")
    assert outlets(corpus, "announce") == ["multiplt_corpus_functions"] and not outlets(corpus, "merge")
    assert outlets(testgen, "announce") == ["multiplt_testgen_tests"] and not outlets(testgen, "write")
    assert "write" in testgen.get_task("announce").upstream_task_ids
    assert outlets(translate, "announce_lua") == ["multiplt_dataset_lua"]

    def scheduled_on(dag) -> list[str]:
        condition = dag.timetable.asset_condition
        return sorted(a.name for a in getattr(condition, "objects", [condition]))

    assert scheduled_on(testgen) == ["multiplt_corpus_functions"]
    assert scheduled_on(translate) == ["multiplt_testgen_tests"]
    assert scheduled_on(finetune) == [
        f"multiplt_dataset_{lang}" for lang in sorted(schemas.TARGET_LANGUAGES)]
    assert type(finetune.timetable.asset_condition).__name__ == "AssetAny"  # any one dataset


MANUAL, ASSET_RUN = SimpleNamespace(conf={"model": "given/model"}), SimpleNamespace(conf={})


def test_plan_tasks_take_the_event_input_and_skip_an_empty_one(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    # an Asset-triggered run has no conf: the Variable named after the DAG sets its settings
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_TESTGEN", '{"model": "tiny/model", "n": 2}')
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_TRANSLATE", '{"model": "tiny/translator"}')

    testgen = load_dag("multiplt_testgen")
    params = defaults(testgen_plans.PARAMS, shards=1)
    plan = testgen.get_task("plan").python_callable
    # a run started by hand names its functions: nothing writes <data_uri>/corpus/functions
    with pytest.raises(AirflowFailException, match="Param functions: a run started by hand needs "
                       ".*<data_uri>/corpus/<source>/functions"):
        plan("file:///DATA", params={**params, "model": "given/model"}, dag_run=MANUAL,
             triggering_asset_events={})
    given = {**params, "model": "given/model", "functions": "file:///DATA/corpus/stdlib/functions"}
    manual = plan("file:///DATA", params=given, dag_run=MANUAL,
                  triggering_asset_events={})["shards"][0]["generate"]
    assert manual[manual.index("--functions") + 1] == "file:///DATA/corpus/stdlib/functions"
    assert manual[manual.index("--model") + 1] == "given/model"  # the conf beats the Variable
    assert manual[manual.index("--n") + 1] == "2"
    announced = triggering(event("multiplt_corpus_functions",
                                 {"functions_uri": "file:///DATA/corpus/stdlib/functions", "rows": 8}))
    planned = plan("file:///DATA", params=params, dag_run=ASSET_RUN,
                   triggering_asset_events=announced)
    argv = planned["shards"][0]["validate"]
    assert argv[argv.index("--functions") + 1] == "file:///DATA/corpus/stdlib/functions"
    assert argv[argv.index("--model") + 1] == "tiny/model"
    assert argv[argv.index("--out") + 1] == "file:///DATA/testgen/corpus_stdlib_functions"
    assert planned["settings"]["out"] == "file:///DATA/testgen/corpus_stdlib_functions"
    # a second corpus's event: its own default out (the first one's would be refused, exit 2)
    other = triggering(event("multiplt_corpus_functions",
                             {"functions_uri": "file:///DATA/corpus/other/functions", "rows": 3}))
    second = plan("file:///DATA", params=params, dag_run=ASSET_RUN, triggering_asset_events=other)
    assert second["settings"]["out"] == "file:///DATA/testgen/corpus_other_functions"
    empty = triggering(event("multiplt_corpus_functions",
                             {"functions_uri": "file:///DATA/corpus/x/functions", "rows": 0}))
    with pytest.raises(AirflowSkipException, match="0 rows"):
        plan("file:///DATA", params=params, dag_run=ASSET_RUN, triggering_asset_events=empty)

    translate = load_dag("multiplt_translate")
    tparams = defaults(translation.PARAMS, languages=["lua"], shards=1)
    tests = triggering(event("multiplt_testgen_tests", {"tests_uri": "s3://b/tg/tests", "rows": 2}))
    tplanned = translate.get_task("plan").python_callable(
        "file:///DATA", params=tparams, dag_run=ASSET_RUN, triggering_asset_events=tests)
    sample = tplanned["entries"][0]["sample"]
    assert sample[sample.index("--tests") + 1] == "s3://b/tg/tests"
    assert sample[sample.index("--model") + 1] == "tiny/translator"
    assert sample[sample.index("--out") + 1] == "file:///DATA/translate/s3_b_tg_tests"
    summary = translate.get_task("summary_argvs").python_callable(tplanned, "file:///DATA")[0]
    assert summary[summary.index("--tests") + 1] == "s3://b/tg/tests"
    assert summary[summary.index("--out") + 1] == "file:///DATA/translate/s3_b_tg_tests"


def test_announce_tasks_describe_what_plan_ran_even_when_the_variable_changes_meanwhile(
        monkeypatch, tmp_path):
    """The Variable is read once, by `plan`: edited while the run's stages work, it changes
    neither the summary command nor the announced extras (tests_uri, dataset_uri, model, rows
    come from the folder the stages wrote)."""
    import collections

    from multiplt import storage

    data_uri = f"file://{tmp_path}/d"
    first, second = f"{data_uri}/job1", f"{data_uri}/job2"
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_TESTGEN", f'{{"out": "{first}/tg", "model": "m1"}}')
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_TRANSLATE",
                       f'{{"out": "{first}/tr", "model": "t1", "languages": ["lua"]}}')
    testgen, translate = load_dag("multiplt_testgen"), load_dag("multiplt_translate")
    # the tasks after the stages take plan's output (an XCom), not the Variable
    assert "plan" in testgen.get_task("announce").upstream_task_ids
    assert all("plan" in translate.get_task(t).upstream_task_ids
               for t in ("summary_argvs", "announce_lua", "announce_r"))
    functions = triggering(event(
        "multiplt_corpus_functions", {"functions_uri": f"{data_uri}/corpus/stdlib/functions", "rows": 4}))
    planned = testgen.get_task("plan").python_callable(
        data_uri, params=defaults(testgen_plans.PARAMS, shards=1), dag_run=ASSET_RUN,
        triggering_asset_events=functions)
    argv = planned["shards"][0]["write"]
    assert (argv[argv.index("--out") + 1], argv[argv.index("--model") + 1]) == (f"{first}/tg", "m1")
    storage.write_json(f"{first}/tg/funnel.json", {"steps": [{"name": "x", "in": 4, "out": 3}]})
    storage.write_json(f"{second}/tg/funnel.json", {"steps": [{"name": "x", "in": 9, "out": 9}]})

    tests = triggering(event("multiplt_testgen_tests",
                             {"tests_uri": f"{first}/tg/tests", "rows": 3}))
    tplanned = translate.get_task("plan").python_callable(
        data_uri, params=defaults(translation.PARAMS, shards=1), dag_run=ASSET_RUN,
        triggering_asset_events=tests)
    storage.write_json(f"{first}/tr/funnel.json", {"lua": {"after_rouge_l": 2}})
    storage.write_json(f"{second}/tr/funnel.json", {"lua": {"after_rouge_l": 7}})

    # the Variables are edited while the stages run (e.g. the next job's settings)
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_TESTGEN", f'{{"out": "{second}/tg", "model": "m2"}}')
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_TRANSLATE",
                       f'{{"out": "{second}/tr", "model": "t2", "languages": ["lua", "r"]}}')

    events = collections.defaultdict(SimpleNamespace)
    extra = testgen.get_task("announce").python_callable(planned, data_uri, outlet_events=events)
    assert [e.extra for e in events.values()] == [extra]
    assert extra == {"tests_uri": f"{first}/tg/tests", "model": "m1", "rows": 3,
                     "functions_uri": f"{data_uri}/corpus/stdlib/functions",
                     "funnel_uri": f"{first}/tg/funnel.json"}

    summary = translate.get_task("summary_argvs").python_callable(tplanned, data_uri)[0]
    assert summary[summary.index("--out") + 1] == f"{first}/tr"
    assert summary[summary.index("--lang") + 1] == "lua"
    events = collections.defaultdict(SimpleNamespace)
    lua = translate.get_task("announce_lua").python_callable("lua", tplanned, data_uri,
                                                             outlet_events=events)
    assert {k: lua[k] for k in ("dataset_uri", "model", "rows", "tests_uri")} == {
        "dataset_uri": f"{first}/tr", "model": "t1", "rows": 2, "tests_uri": f"{first}/tg/tests"}
    from airflow.sdk.exceptions import AirflowSkipException

    with pytest.raises(AirflowSkipException, match="r was not translated"):
        translate.get_task("announce_r").python_callable("r", tplanned, data_uri,
                                                         outlet_events=events)


def test_finetune_settings_task_trains_the_announced_languages_with_the_variables_model(monkeypatch):
    from airflow.sdk.exceptions import AirflowSkipException

    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_FINETUNE", '{"base_model": "tiny/base", "epochs": 1}')
    settings = load_dag("multiplt_finetune").get_task("settings").python_callable
    params = defaults(schemas.FINETUNE)
    lua = triggering(event("multiplt_dataset_lua",
                           {"dataset_uri": "file:///DATA/translate", "lang": "lua", "rows": 3}))
    got = settings(params=params, dag_run=ASSET_RUN, triggering_asset_events=lua)
    assert (got["base_model"], got["epochs"], got["languages"]) == ("tiny/base", 1, ["lua"])
    assert got["datasets"] == {"lua": "file:///DATA/translate"}
    manual = settings(params={**params, "base_model": "given/base", "languages": ["r"]},
                      dag_run=SimpleNamespace(conf={"base_model": "given/base", "languages": ["r"]}),
                      triggering_asset_events={})
    assert manual["base_model"] == "given/base" and manual["datasets"] == {"r": "nuprl/MultiPL-T"}
    empty = triggering(event("multiplt_dataset_lua",
                             {"dataset_uri": "file:///DATA/translate", "lang": "lua", "rows": 0}))
    with pytest.raises(AirflowSkipException, match="nothing to train"):
        settings(params=params, dag_run=ASSET_RUN, triggering_asset_events=empty)


class _EvaluatedTi:
    """A task instance of a multiplt_evaluate run whose tasks all succeeded, but those named."""

    dag_id, run_id = "multiplt_evaluate", "manual__1"

    def __init__(self, entries, failed=()):
        self.entries, self.failed = entries, set(failed)

    def get_task_states(self, dag_id, task_ids, run_ids):
        assert (dag_id, run_ids) == (self.dag_id, [self.run_id])
        shards = sum(len(e["execute"]) for e in self.entries)
        return {self.run_id: {f"{t}_{i}": "failed" if (t, i) in self.failed else "success"
                              for t in task_ids
                              for i in range(shards if t == "execute" else len(self.entries))}}


def test_evaluate_announces_the_results_store_and_each_recorded_run():
    import collections

    from multiplt_pipelines.plans import evaluation_plan

    dag = load_dag("multiplt_evaluate")
    assert [a.name for a in dag.get_task("announce_results").outlets] == ["multiplt_results"]
    assert not dag.get_task("scoring.record_results").outlets
    assert "scoring.record_results" in dag.get_task("announce_results").upstream_task_ids
    params = defaults(schemas.EVALUATE, model="org/m", revision="v1", languages=["lua", "r"],
                      experiment="multiplt", epoch=2)
    entries = evaluation_plan(params, "s3://b/runs", "s3://b/results.parquet")
    lanes = [argv for e in entries for argv in e["execute"]]
    announce = dag.get_task("announce_results").python_callable
    events = collections.defaultdict(SimpleNamespace)
    # late: execute_late's shards (none; test_evaluate_recovery.py)
    extra = announce(entries, lanes, None, "s3://b/results.parquet", params=params,
                     outlet_events=events, ti=_EvaluatedTi(entries))
    [event] = events.values()
    assert event.extra == extra
    assert extra["results_store"] == "s3://b/results.parquet"
    assert (extra["experiment"], extra["epoch"]) == ("multiplt", 2)
    assert [(r["lang"], r["model"], r["revision"]) for r in extra["runs"]] == [
        ("lua", "org/m", "v1"), ("r", "org/m", "v1")]
    assert [r["run"] for r in extra["runs"]] == [e["run"] for e in entries]
    assert extra["failed"] == []
    # r's record failed: lua is announced, r named with the reason
    extra = announce(entries, lanes, None, "s3://b/results.parquet", params=params,
                     outlet_events=events, ti=_EvaluatedTi(entries, {("scoring.record_results", 1)}))
    assert [r["lang"] for r in extra["runs"]] == ["lua"]
    assert [(f["lang"], f["run"], f["reason"]) for f in extra["failed"]] == [
        ("r", entries[1]["run"], "record_results: failed")]


def _empty_parquet(path, columns):
    import polars as pl

    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({c: [] for c in columns}, schema={c: pl.String for c in columns}).write_parquet(path)


def test_a_manual_run_on_an_input_with_no_row_is_skipped_not_failed(tmp_path):
    """multiplt translate and multiplt train refuse an empty input (exit 2): a run started by
    hand on one ends at its plan with the reason instead, like a run started by an empty event."""
    import polars as pl
    from airflow.sdk.exceptions import AirflowSkipException

    from tests.fixtures import translate as fx

    plan = load_dag("multiplt_translate").get_task("plan").python_callable
    tparams = defaults(translation.PARAMS, languages=["lua"], shards=1)
    _empty_parquet(tmp_path / "empty-tests" / "tests" / "part-0.parquet", ["content", "sha1"])
    with pytest.raises(AirflowSkipException, match=r"the tests dataset .*empty-tests has 0 rows"):
        plan("file:///DATA", params={**tparams, "tests": str(tmp_path / "empty-tests")},
             dag_run=MANUAL, triggering_asset_events={})
    inputs = fx.write(tmp_path / "in")
    assert plan("file:///DATA", params={**tparams, "tests": inputs["tests"]}, dag_run=MANUAL,
                triggering_asset_events={})["entries"][0]["lang"] == "lua"
    # a file that cannot be read is left to the stage command, whose error is one line (exit 2)
    corrupt = tmp_path / "corrupt-tests" / "tests" / "part-0.parquet"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_bytes(b"PAR1 not really parquet")
    assert plan("file:///DATA", params={**tparams, "tests": str(corrupt.parents[1])},
                dag_run=MANUAL, triggering_asset_events={})["entries"][0]["lang"] == "lua"

    settings = load_dag("multiplt_finetune").get_task("settings").python_callable
    params = defaults(schemas.FINETUNE, base_model="tiny/base", languages=["lua", "r"],
                      dataset=str(tmp_path / "ds"))
    conf = SimpleNamespace(conf={"languages": ["lua", "r"]})
    _empty_parquet(tmp_path / "ds" / "data" / "lua-00000-of-00001.parquet", ["content"])
    _empty_parquet(tmp_path / "ds" / "data" / "r-00000-of-00001.parquet", ["content"])
    with pytest.raises(AirflowSkipException, match="nothing to train: .*lua .*r .*0 rows"):
        settings(params=params, dag_run=conf, triggering_asset_events={})
    pl.DataFrame({"content": ["x <- 1\n"]}).write_parquet(tmp_path / "ds" / "data" / "r-00000-of-00001.parquet")
    got = settings(params=params, dag_run=conf, triggering_asset_events={})
    assert got["languages"] == ["r"] and got["datasets"] == {"r": str(tmp_path / "ds")}
