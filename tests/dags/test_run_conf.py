"""What a run started through the REST API or the UI's "Trigger DAG w/ config" may carry: every
key of its conf (and of the Airflow Variable named after the DAG) is a Param of that DAG, local
paths are absolute (a stage runs in the task's working folder, AIRFLOW_HOME), a local model
folder exists, and a run started by hand names the input that no default folder holds. Each
is refused by the run's first task (`plan`, `settings` in multiplt_finetune), before any
stage, with one line and no retry; and every conf or Variable the chain itself writes passes."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from tests.dags.test_pipeline_plans import defaults, load_dag
from multiplt_pipelines import checks  # noqa: E402 (dags/ is on sys.path)
from multiplt_pipelines import params as schemas  # noqa: E402
from multiplt_pipelines import testgen as testgen_plans  # noqa: E402
from multiplt_pipelines import translation  # noqa: E402
from multiplt_pipelines import watching  # noqa: E402
from multiplt_pipelines.corpus import CORPUS  # noqa: E402
from multiplt_pipelines.publishing import PUBLISH  # noqa: E402

RELATIVE = ("give an absolute path or a URI; a relative path would be read from the task's "
            "working folder (AIRFLOW_HOME)")
EVALUATE_PARAMS = watching.evaluate_params(schemas.EVALUATE, None)


def run(conf: dict, run_type: str = "manual"):
    return SimpleNamespace(run_type=run_type, conf=conf)


def evaluate_plan(conf: dict, run_type: str = "manual"):
    """multiplt_evaluate's plan as Airflow calls it: the conf merged into the params (any key)."""
    plan = load_dag("multiplt_evaluate").get_task("plan").python_callable
    params = {**defaults(EVALUATE_PARAMS, model="bigcode/starcoderbase-1b", languages=["lua"]),
              **conf}
    return plan("file:///DATA", "file:///DATA/results.parquet", params=params,
                dag_run=run(conf, run_type))


def generation_plan(dag_id: str, conf: dict, events=None):
    schema = testgen_plans.PARAMS if dag_id == "multiplt_testgen" else translation.PARAMS
    plan = load_dag(dag_id).get_task("plan").python_callable
    return plan("file:///DATA", params={**defaults(schema, shards=1), **conf},
                dag_run=run(conf), triggering_asset_events=events or {})


def finetune_settings(conf: dict, events=None):
    settings = load_dag("multiplt_finetune").get_task("settings").python_callable
    return settings(params={**defaults(schemas.FINETUNE), **conf}, dag_run=run(conf),
                    triggering_asset_events=events or {})


def corpus_plan(conf: dict):
    plan = load_dag("multiplt_corpus").get_task("plan").python_callable
    return plan("file:///DATA", params={**defaults(CORPUS), **conf}, dag_run=run(conf))


def publish_plan(conf: dict):
    plan = load_dag("multiplt_publish").get_task("plan_dataset").python_callable
    return plan(params={**defaults(PUBLISH), **conf}, dag_run=run(conf),
                triggering_asset_events={})


def watch_plan(conf: dict):
    plan = load_dag("multiplt_watch").get_task("plan").python_callable
    return plan(params={**defaults(watching.WATCH), **conf}, dag_run=run(conf), run_id="r1",
                triggering_asset_events={})


# ---- 1. a key that is no Param ----------------------------------------------------------------

def test_a_misspelled_conf_key_fails_plan_naming_the_nearest_param():
    """`limt` used to be ignored, and the run built and evaluated all 161 problems."""
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as raised:
        evaluate_plan({"model": "bigcode/starcoderbase-1b", "languages": ["lua"], "limt": 2})
    assert str(raised.value) == ("conf key 'limt' is not a Param of multiplt_evaluate (did you "
                                 "mean 'limit'?)")
    # nothing near: the Params are listed
    with pytest.raises(AirflowFailException, match="conf key 'zzzz' is not a Param of "
                       "multiplt_evaluate \\(its Params: api_base, backend, "):
        evaluate_plan({"zzzz": 1})
    assert evaluate_plan({"limit": 2, "rerun_models": []})[0]["build"][-2:] == ["--limit", "2"]


@pytest.mark.parametrize("call, conf, message", [
    (lambda c: generation_plan("multiplt_testgen", c), {"modle": "org/m"},
     "conf key 'modle' is not a Param of multiplt_testgen (did you mean 'model'?)"),
    (lambda c: generation_plan("multiplt_translate", c), {"language": ["lua"]},
     "conf key 'language' is not a Param of multiplt_translate (did you mean 'languages'?)"),
    (finetune_settings, {"epoch": 1},
     "conf key 'epoch' is not a Param of multiplt_finetune (did you mean 'epochs'?)"),
    (corpus_plan, {"source": "stdlib", "shard": 2},
     "conf key 'shard' is not a Param of multiplt_corpus (did you mean 'shards'?)"),
    (publish_plan, {"dataset_rep": "o/n"},
     "conf key 'dataset_rep' is not a Param of multiplt_publish (did you mean 'dataset_repo'?)"),
    (watch_plan, {"model": "org/m", "evaluate_language": ["lua"]},
     "conf key 'evaluate_language' is not a Param of multiplt_watch (did you mean "
     "'evaluate_languages'?)"),
])
def test_every_dag_refuses_a_conf_key_that_is_no_param(call, conf, message):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match=re.escape(message)):
        call(conf)


def test_a_variable_key_that_is_no_param_fails_the_runs_that_read_it(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from tests.dags.test_chain import event, triggering

    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_EVALUATE", '{"rerun_models": ["org/m"], "shard": 2}')
    with pytest.raises(AirflowFailException, match=re.escape(
            "Variable multiplt_evaluate key 'shard' is not a Param of multiplt_evaluate (did you "
            "mean 'shards'?)")):
        evaluate_plan({}, "scheduled")
    announced = triggering(event("multiplt_corpus_functions",
                                 {"functions_uri": "file:///DATA/corpus/stdlib/functions", "rows": 2}))
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_TESTGEN", '{"temprature": 0.5}')
    with pytest.raises(AirflowFailException, match=re.escape(
            "Variable multiplt_testgen key 'temprature' is not a Param of multiplt_testgen (did "
            "you mean 'temperature'?)")):
        generation_plan("multiplt_testgen", {}, announced)
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_TESTGEN", '["not", "an", "object"]')
    with pytest.raises(AirflowFailException, match="Variable multiplt_testgen must be a JSON object"):
        generation_plan("multiplt_testgen", {}, announced)
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_PUBLISH", '{"dry-run": "/tmp/pub"}')
    with pytest.raises(AirflowFailException, match="did you mean 'dry_run'"):
        publish_plan({})
    # the watch list's own keys belong in the multiplt_watch Variable; others are refused
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_WATCH", '{"authors": ["org"], "pattern": "m*", '
                       '"poll_interval": 60, "limit": 5, "evaluate_languages": ["lua"]}')
    assert watch_plan({"model": "org/m"})["evaluate"][0]["conf"]["languages"] == ["lua"]
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_WATCH", '{"authors": ["org"], "recipie": "tiny"}')
    with pytest.raises(AirflowFailException, match="did you mean 'recipe'"):
        watch_plan({"model": "org/m"})


def test_every_conf_and_variable_the_chain_writes_is_made_of_params():
    """The producers of confs and Variables: multiplt_finetune's checkpoint confs, the watcher's
    runs, the main job's Variables (plugins/multiplt_airflow/chain_job.py); none is refused."""
    from multiplt_airflow import chain_job
    from multiplt_pipelines.plans import checkpoint_confs

    names = {"multiplt_testgen": testgen_plans.PARAMS, "multiplt_translate": translation.PARAMS,
             "multiplt_finetune": schemas.FINETUNE, "multiplt_publish": PUBLISH}
    for publish_repo in (None, "org/repo"):
        variables = chain_job.chain_settings(
            model="/models/tiny", languages=["lua", "py"], targets=["lua"], root="file:///D/job",
            publish_dir="/tmp/publish", n=2, max_new_tokens=16, limit=3,
            teacher={"backend": "openai", "model": "served", "api_base": "http://h:1/v1"},
            publish_repo=publish_repo)
        for dag_id, variable in variables.items():
            checks.known_keys(variable, names[dag_id], dag_id, f"Variable {dag_id}")
    finetune = defaults(schemas.FINETUNE, base_revision="v1")
    rows = [{"uri": "file:///D/t/checkpoints/lua-multiplt-epoch1", "tag": "lua-multiplt-epoch1",
             "lang": "lua", "epoch": 1, "experiment": "multiplt"}]
    for conf in checkpoint_confs(finetune, [{"lang": "lua", "out": "file:///D/t", "rows": rows}]):
        checks.known_keys(conf, EVALUATE_PARAMS, "multiplt_evaluate")
    settings = defaults(watching.WATCH, finetune_languages=["lua"])
    triggers = watching.watch_triggers(settings, ["org/new"], "r1")
    for conf in (t["conf"] for t in triggers["evaluate"]):
        checks.known_keys(conf, EVALUATE_PARAMS, "multiplt_evaluate")
    for conf in (t["conf"] for t in triggers["finetune"]):
        checks.known_keys(conf, schemas.FINETUNE, "multiplt_finetune")


# ---- 2. relative local paths ------------------------------------------------------------------

@pytest.mark.parametrize("call, conf, param", [
    (corpus_plan, {"source": "tests/fixtures/corpus/planted"}, "source"),
    (corpus_plan, {"source": "stdlib", "out": "corpus/out"}, "out"),
    (corpus_plan, {"source": "stdlib", "benchmarks": "humaneval, bench/mbpp.jsonl"}, "benchmarks"),
    (evaluate_plan, {"model": "./models/tiny"}, "model"),
    (evaluate_plan, {"benchmark_source": "bench/mbpp.jsonl"}, "benchmark_source"),
    (evaluate_plan, {"backend": "replay", "replay_source": "runs/{lang}"}, "replay_source"),
    (evaluate_plan, {"tokenizer": "../tok"}, "tokenizer"),
    (lambda c: generation_plan("multiplt_testgen", c), {"functions": "corpus/f"}, "functions"),
    (lambda c: generation_plan("multiplt_testgen", c), {"functions": "/d/f", "out": "tg"}, "out"),
    (lambda c: generation_plan("multiplt_translate", c), {"tests": "tg/tests"}, "tests"),
    (finetune_settings, {"training_root": "training"}, "training_root"),
    (finetune_settings, {"dataset": "./data/{lang}"}, "dataset"),
    (finetune_settings, {"base_model": "./models/base"}, "base_model"),
    (publish_plan, {"dry_run": "pub"}, "dry_run"),
    (publish_plan, {"training_outputs": ["/abs/t", "rel/t"]}, "training_outputs"),
])
def test_a_relative_local_path_fails_plan(call, conf, param):
    """`source: tests/fixtures/corpus/planted` failed in build_shard with `does not exist`: the
    stage reads it from AIRFLOW_HOME."""
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match=rf"^Param {param}: '[^']+' is a relative "
                       rf"path: {re.escape(RELATIVE)}$"):
        call(conf)


def test_a_relative_folder_given_as_model_is_refused_and_a_hub_id_kept(tmp_path, monkeypatch):
    """`models/tiny` that names a folder here is a path (generate took it for a Hub id);
    `org/name` that names none stays a Hub id; URIs and absolute paths are left alone."""
    from airflow.sdk.exceptions import AirflowFailException

    (tmp_path / "models" / "tiny").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AirflowFailException, match="Param model: 'models/tiny' is a relative path"):
        evaluate_plan({"model": "models/tiny"})
    for fine in ({"model": "org/name"}, {"model": "s3://bucket/models/m"},
                 {"benchmark_source": "org/mbpp"}, {"benchmark_source": "/abs/mbpp.jsonl"},
                 {"backend": "openai", "api_base": "http://gpu:8000/v1", "model": "models/tiny"}):
        assert evaluate_plan(fine)[0]["lang"] == "lua", fine
    assert corpus_plan({"source": "hf://datasets/org/code"})["out"].endswith("hf_datasets_org_code")
    assert finetune_settings({"dataset": "org/data-{lang}"})["datasets"]["lua"] == "org/data-lua"


# ---- 3. a local model folder that does not exist ----------------------------------------------

def test_a_missing_local_model_folder_fails_plan_on_the_local_runtime(tmp_path, monkeypatch):
    """`{"model": "/tmp/x/no_such_model"}` passed plan, then build_benchmark ran and generate
    failed."""
    from airflow.sdk.exceptions import AirflowFailException

    monkeypatch.setenv("AIRFLOW__MULTIPLT__RUNTIME", "local")
    missing = str(tmp_path / "no_such_model")
    with pytest.raises(AirflowFailException, match=re.escape(
            f"Param model: {missing!r} is no folder (nothing at {missing})")):
        evaluate_plan({"model": missing})
    with pytest.raises(AirflowFailException, match="Param model: 'file://.*' is no folder"):
        evaluate_plan({"model": f"file://{missing}"})
    (tmp_path / "weights.bin").write_text("x")
    with pytest.raises(AirflowFailException, match="is no folder \\(not a folder at "):
        generation_plan("multiplt_testgen", {"model": str(tmp_path / "weights.bin"),
                                             "functions": "/d/f"})
    with pytest.raises(AirflowFailException, match="Param base_model: .* is no folder"):
        finetune_settings({"base_model": missing})
    (tmp_path / "model").mkdir()
    assert evaluate_plan({"model": str(tmp_path / "model")})[0]["model"] == str(tmp_path / "model")
    assert evaluate_plan({"model": f"file://{tmp_path}/model"})[0]["lang"] == "lua"
    # the openai backend's model is a served name, whatever it looks like
    assert evaluate_plan({"model": missing, "backend": "openai",
                          "api_base": "http://gpu:8000/v1"})[0]["lang"] == "lua"


def test_a_docker_runtime_does_not_check_the_workers_folders(tmp_path):
    """In the docker runtime the stages run in containers whose mounts differ from the worker's
    folders: plan cannot tell whether a folder exists there."""
    missing = str(tmp_path / "no_such_model")
    checks.model_name(missing, "transformers", local=False)
    with pytest.raises(checks.BadParams, match="is no folder"):
        checks.model_name(missing, "transformers", local=True)


# ---- 4. a manual run's input ------------------------------------------------------------------

def test_a_manual_testgen_or_translate_run_must_name_its_input():
    """testgen's default `<data_uri>/corpus/functions` is written by nothing: a run with conf {}
    passed plan and failed in generate (`functions dataset ... does not exist`)."""
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match=re.escape(
            "Param functions: a run started by hand needs the functions dataset to write tests "
            "for; a multiplt_corpus run writes it at <out>/functions, by default "
            "<data_uri>/corpus/<source>/functions (e.g. file:///DATA/corpus/stdlib/functions)")):
        generation_plan("multiplt_testgen", {})
    with pytest.raises(AirflowFailException, match=re.escape(
            "Param tests: a run started by hand needs the tests dataset to translate; a "
            "multiplt_testgen run writes it at <out>/tests, by default <data_uri>/testgen/"
            "<functions as a folder name>/tests (e.g. "
            "file:///DATA/testgen/corpus_stdlib_functions/tests for the functions "
            "<data_uri>/corpus/stdlib/functions)")):
        generation_plan("multiplt_translate", {"languages": ["lua"]})
    given = generation_plan("multiplt_testgen", {"functions": "file:///DATA/corpus/stdlib/functions"})
    assert given["settings"]["functions"] == "file:///DATA/corpus/stdlib/functions"
    tests = "file:///DATA/testgen/corpus_stdlib_functions/tests"
    assert generation_plan("multiplt_translate", {"tests": tests})["settings"]["tests"] == tests


# ---- 5. a value taken from the Airflow Variable -------------------------------------------------

FUNCTIONS_EVENT = {"functions_uri": "file:///DATA/corpus/stdlib/functions", "rows": 2}
TESTS_EVENT = {"tests_uri": "file:///DATA/testgen/corpus_stdlib_functions/tests", "rows": 2}


def asset_run(dag_id: str, variable: dict, monkeypatch, conf: dict | None = None):
    """The first task of `dag_id` as its Asset event starts it (no conf, unless `conf`), with the
    Airflow Variable named after the DAG set to `variable`."""
    import json

    from tests.dags.test_chain import event, triggering

    monkeypatch.setenv(f"AIRFLOW_VAR_{dag_id.upper()}", json.dumps(variable))
    conf = conf or {}
    if dag_id == "multiplt_testgen":
        return generation_plan(dag_id, conf, triggering(event("multiplt_corpus_functions",
                                                              FUNCTIONS_EVENT)))
    if dag_id == "multiplt_translate":
        return generation_plan(dag_id, conf, triggering(event("multiplt_testgen_tests",
                                                              TESTS_EVENT)))
    if dag_id == "multiplt_finetune":
        return finetune_settings(conf, triggering(event(
            "multiplt_dataset_lua", {"dataset_uri": "file:///DATA/translate/x", "lang": "lua",
                                     "rows": 3})))
    return publish_plan(conf)


def refusal(call) -> str:
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as raised:
        call()
    return str(raised.value)


def relative(key: str, value: str) -> str:
    return f"Param {key}: {value!r} is a relative path: {RELATIVE}"


@pytest.mark.parametrize("dag_id, variable, message", [
    ("multiplt_testgen", {"backend": "replay", "replay_source": "runs/r.jsonl"},
     relative("replay_source", "runs/r.jsonl")),
    ("multiplt_testgen", {"out": "tg"}, relative("out", "tg")),
    ("multiplt_translate", {"languages": ["lua", "py"]},  # py is the source language
     f"Param languages: 'py' is not one of {list(schemas.TARGET_LANGUAGES)} (target languages)"),
    ("multiplt_translate", {"model": "org/a b"}, "Param model: 'org/a b' is not a local folder "
     "or storage URI, nor a Hub repo id: Repo id must use alphanumeric chars"),
    ("multiplt_finetune", {"recipe": "starcoder-1b"}, "Param recipe: unknown recipe "
     "'starcoder-1b'"),
    ("multiplt_finetune", {"dataset": "./data/{lang}"}, relative("dataset", "./data/{lang}")),
    ("multiplt_publish", {"dry_run": "pub"}, relative("dry_run", "pub")),
])
def test_a_bad_value_from_the_variable_is_refused_naming_the_variable(dag_id, variable, message,
                                                                     monkeypatch):
    """An Asset-triggered run has no conf: a user reading the refusal of `replay_source`
    finds nothing wrong in the run's conf and Params unless the message names the Variable."""
    got = refusal(lambda: asset_run(dag_id, variable, monkeypatch))
    assert got.startswith(message), got
    assert got.endswith(f" (from the Airflow Variable {dag_id})"), got
    assert got.count("Airflow Variable") == 1
    # the same value given in the conf of a run started by hand: refused as it was, unnamed
    monkeypatch.delenv(f"AIRFLOW_VAR_{dag_id.upper()}")
    conf = {**variable, **({"functions": "/d/f"} if dag_id == "multiplt_testgen" else {}),
            **({"tests": "/d/t"} if dag_id == "multiplt_translate" else {})}
    calls = {"multiplt_finetune": finetune_settings, "multiplt_publish": publish_plan}
    call = calls.get(dag_id, lambda c: generation_plan(dag_id, c))
    assert refusal(lambda: call(conf)) == got.removesuffix(f" (from the Airflow Variable {dag_id})")


def test_a_missing_model_folder_from_the_variable_names_it(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RUNTIME", "local")
    missing = str(tmp_path / "no_such_model")
    assert refusal(lambda: asset_run("multiplt_translate", {"model": missing}, monkeypatch)) == (
        f"Param model: {missing!r} is no folder (nothing at {missing}) (from the Airflow "
        "Variable multiplt_translate)")
    assert refusal(lambda: asset_run("multiplt_finetune", {"base_model": missing}, monkeypatch)) == (
        f"Param base_model: {missing!r} is no folder (nothing at {missing}) (from the Airflow "
        "Variable multiplt_finetune)")


def test_a_refusal_of_several_params_names_those_the_variable_set(monkeypatch):
    """`backend: replay` in the Variable, no `replay_source` anywhere: the Variable set only
    `backend`; with the conf setting `backend` too, the Variable is not named."""
    needs = ("Params backend, replay_source: the replay backend needs --replay-source (a "
             "completion folder or JSONL)")
    assert refusal(lambda: asset_run("multiplt_testgen", {"backend": "replay"}, monkeypatch)) == (
        f"{needs} (backend from the Airflow Variable multiplt_testgen)")
    both = {"backend": "vllm", "replay_source": "/r.jsonl"}
    assert refusal(lambda: asset_run("multiplt_translate", both, monkeypatch)).endswith(
        "samples from --model (from the Airflow Variable multiplt_translate)")
    # the conf beats the Variable: a manual run's conf value is refused unnamed
    assert refusal(lambda: asset_run("multiplt_testgen", {"backend": "replay"}, monkeypatch,
                                     {"functions": "/d/f", "backend": "replay"})) == needs
    # a run started by hand reads the Variable too: py on the default dataset, `languages`
    # from the Variable, `dataset` the Param default
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_FINETUNE", '{"languages": ["py"]}')
    assert refusal(lambda: finetune_settings({"epochs": 1})).endswith(
        "train py on a `dataset` of its own, e.g. its multiplt_translate output (languages "
        "from the Airflow Variable multiplt_finetune)")


def test_a_value_an_event_replaced_is_not_the_variables(monkeypatch):
    """The event's input beats the Variable's: a refusal of it does not name the Variable; an
    event run's languages are the events', so the Variable's `languages` is not checked."""
    from tests.dags.test_chain import event, triggering

    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_TESTGEN", '{"functions": "/d/f"}')
    relative_event = triggering(event("multiplt_corpus_functions",
                                      {"functions_uri": "corpus/f", "rows": 2}))
    assert refusal(lambda: generation_plan("multiplt_testgen", {}, relative_event)) == relative(
        "functions", "corpus/f")
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_TRANSLATE", '{"tests": "/d/t", "languages": ["lua"]}')
    relative_event = triggering(event("multiplt_testgen_tests", {"tests_uri": "tg/t", "rows": 2}))
    assert refusal(lambda: generation_plan("multiplt_translate", {}, relative_event)) == relative(
        "tests", "tg/t")
    settings = asset_run("multiplt_finetune", {"languages": ["py"]}, monkeypatch)
    assert settings["languages"] == ["lua"] and settings["datasets"] == {
        "lua": "file:///DATA/translate/x"}
    # an event's language its Param refuses: the event's, not the Variable's `languages`
    odd = triggering(event("multiplt_dataset_xx", {"dataset_uri": "/d/x", "lang": "xx", "rows": 1}))
    assert refusal(lambda: finetune_settings({}, odd)).startswith(
        "Param languages: 'xx' is not one of")
    assert "Airflow Variable" not in refusal(lambda: finetune_settings({}, odd))


def test_a_manual_run_whose_variable_empties_its_input_names_the_variable(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_TRANSLATE", '{"tests": ""}')
    got = refusal(lambda: generation_plan("multiplt_translate", {"languages": ["lua"]}))
    assert got.startswith("Param tests: a run started by hand needs the tests dataset")
    assert got.endswith(" (from the Airflow Variable multiplt_translate)")


def test_variable_source_names_the_variable_only_for_its_keys():
    def raised(exc, from_variable=("model",)):
        with pytest.raises(Exception) as caught:
            with checks.variable_source(from_variable, "multiplt_x"):
                raise exc
        return caught.value

    got = raised(checks.BadParams("Param model: bad", ["model"]))
    assert (type(got), str(got), got.keys) == (checks.BadParams, "Param model: bad (from the "
                                               "Airflow Variable multiplt_x)", ("model",))
    assert str(raised(checks.BadParams("Params a, model: bad", ["a", "model"]))) == (
        "Params a, model: bad (model from the Airflow Variable multiplt_x)")
    assert str(raised(checks.BadParams("Param n: bad", ["n"]))) == "Param n: bad"
    assert str(raised(checks.BadParams("conf key 'x' is not a Param"))) == (
        "conf key 'x' is not a Param")
    assert str(raised(checks.BadParams("Param model: bad", ["model"]), set())) == "Param model: bad"
    assert type(raised(ValueError("model"))) is ValueError


def test_a_base_template_for_a_manual_runs_training_outputs_fails_plan_naming_its_source(
        monkeypatch):
    """`{base}` needs the base model, which only a checkpoints event gives: refused once, with
    the Variable named when the template is its (it was a ValueError, retried twice)."""
    plan = load_dag("multiplt_publish").get_task("plan_checkpoints").python_callable

    def plan_checkpoints(conf):
        return plan(params={**defaults(PUBLISH), **conf}, dag_run=run(conf),
                    triggering_asset_events={})

    message = ("Param checkpoints_repo: 'org/MultiPL-T-{base}' needs the base model, which a "
               "manual run's training_outputs do not give; use a plain OWNER/NAME")
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_PUBLISH", '{"checkpoints_repo": "org/MultiPL-T-{base}"}')
    assert refusal(lambda: plan_checkpoints({"training_outputs": ["/t/lua"]})) == (
        f"{message} (from the Airflow Variable multiplt_publish)")
    monkeypatch.delenv("AIRFLOW_VAR_MULTIPLT_PUBLISH")
    assert refusal(lambda: plan_checkpoints({"training_outputs": ["/t/lua"],
                                             "checkpoints_repo": "org/MultiPL-T-{base}"})) == message
