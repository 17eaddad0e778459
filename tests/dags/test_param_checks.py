"""Settings a stage command would refuse are refused when the run starts: by the Param schema at
trigger time where one Param's schema can say it, else by the run's first task (`plan`,
`settings` in multiplt_finetune) with the command's own message, before any stage runs (for
finetune: before training, which the evaluations it triggers with the same settings follow)."""

from __future__ import annotations

import argparse
import re
from types import SimpleNamespace

import pytest

from tests.dags.test_pipeline_plans import defaults, load_dag, validated
from multiplt_pipelines import checks  # noqa: E402 (dags/ is on sys.path)
from multiplt_pipelines import params as schemas  # noqa: E402
from multiplt_pipelines import testgen as testgen_plans  # noqa: E402
from multiplt_pipelines import translation  # noqa: E402
from multiplt_pipelines import watching  # noqa: E402

MANUAL = SimpleNamespace(run_type="manual", conf={})
SCHEDULED = SimpleNamespace(run_type="scheduled", conf={})

# (conf, what the refusal says): each one passes Airflow's per-Param validation, and each made a
# stage command fail (generate, benchmark build), for multiplt_finetune after all its training
LATE_REFUSALS = [
    ({"backend": "replay", "replay_source": None}, "the replay backend needs --replay-source"),
    ({"backend": "openai", "api_base": None}, "the openai backend needs --api-base"),
    ({"backend": "openai", "api_base": "localhost:8000"}, "is not an http(s)://HOST[:PORT]/v1 URL"),
    ({"benchmark_source": "nope"}, "unknown benchmark source 'nope'"),
    ({"benchmark_source": "mbpp"}, "unknown benchmark source 'mbpp'"),
    ({"benchmark_source": "gs://b/mbpp.jsonl"}, "unsupported scheme 'gs'"),
    ({"backend": "replay", "replay_source": "s3://No_Bucket/{lang}"}, "not a valid S3 bucket name"),
    ({"replay_source": "file:///r/{lang}"}, "--replay-source is for --backend replay only"),
]


def evaluate_plan(conf: dict, dag_run=MANUAL):
    plan = load_dag("multiplt_evaluate").get_task("plan").python_callable
    params = defaults(schemas.EVALUATE, model="bigcode/starcoderbase-1b", languages=["lua"],
                      rerun_models=[])
    return plan("file:///DATA", "file:///DATA/results.parquet", params={**params, **conf},
                dag_run=dag_run)


@pytest.mark.parametrize("conf, message", LATE_REFUSALS)
def test_evaluate_plan_refuses_what_generate_or_build_would(conf, message):
    from airflow.sdk.exceptions import AirflowFailException

    validated(load_dag("multiplt_evaluate"), {"model": "m", **conf})  # Airflow lets it through
    with pytest.raises(AirflowFailException, match=re.escape(message)) as raised:
        evaluate_plan(conf)
    assert "\n" not in str(raised.value)


def test_evaluate_plan_keeps_what_the_commands_take():
    fine = [{}, {"backend": "replay", "replay_source": "file:///r/{lang}", "model": "any label"},
            {"backend": "openai", "api_base": "http://gpu:8000/v1", "model": "served model"},
            {"benchmark_source": "s3://bucket/v1/mbpp.jsonl"}, {"benchmark_source": "org/mbpp"},
            {"model": "s3://bucket/models/m"}, {"problems": "HumanEval_0_x, HumanEval_1_y"}]
    for conf in fine:
        assert evaluate_plan(conf)[0]["lang"] == "lua", conf


def test_a_checkpoint_uri_needs_a_checkpoint_tag_as_revision():
    """`checkpoint_uri` marks a checkpoint's evaluation, whose tokenizer stays out of the run
    folder's name (plans.checkpoint_run): set by hand on another revision, the run would share
    the folder of the model's own tokenizer, which generate refuses. multiplt_finetune's confs
    (a training output, its tag as revision) pass."""
    from airflow.sdk.exceptions import AirflowFailException

    from airflow.sdk.exceptions import ParamValidationError

    uri = "s3://bucket/training/m-x-lua/checkpoints/lua-x-epoch1"
    with pytest.raises(ParamValidationError, match="Invalid input for param revision"):
        # a tag and a newline: Airflow refuses it (no spaces at either end of a revision)
        validated(load_dag("multiplt_evaluate"), {"model": "m", "checkpoint_uri": uri,
                                                  "revision": "lua-x-epoch1\n"})
    for revision in (None, "main", "v1", "lua-x-epoch"):
        conf = {"checkpoint_uri": uri, "revision": revision, "tokenizer": "other/tokenizer"}
        validated(load_dag("multiplt_evaluate"), {"model": "m", **conf})  # Airflow lets it through
        with pytest.raises(AirflowFailException, match=r"^Param checkpoint_uri marks the evaluation "
                           r"of a training output's checkpoint.*revision "
                           + re.escape(repr(revision)) + " is no checkpoint tag") as raised:
            evaluate_plan(conf)
        assert "\n" not in str(raised.value).replace(repr(revision), "")
    checkpoint = {"model": "s3://bucket/training/m-x-lua", "revision": "lua-x-epoch1"}
    run = evaluate_plan({**checkpoint, "checkpoint_uri": uri, "tokenizer": "other/tokenizer"})[0]["run"]
    assert run == evaluate_plan(checkpoint)[0]["run"] == (
        "file:///DATA/evaluate/humaneval-lua-bucket_training_m_x_lua-lua_x_epoch1-0.2")
    assert evaluate_plan({"checkpoint_uri": None, "revision": "main"})[0]["lang"] == "lua"


def test_model_names_are_refused_at_trigger_time_and_hub_ids_checked_at_plan():
    """`model=" "` or `"bigcode/x "`: generate's "Repo id must use alphanumeric chars"."""
    from airflow.sdk.exceptions import AirflowFailException, ParamValidationError

    dag = load_dag("multiplt_evaluate")
    for model in (" ", "bigcode/x ", " bigcode/x", "bigcode/x\n"):
        with pytest.raises(ParamValidationError):
            validated(dag, {"model": model})
        with pytest.raises(AirflowFailException, match="Param model"):
            evaluate_plan({"model": model})  # e.g. from the Variable of a scheduled run
    assert validated(dag, {"model": "/models/my model"})["model"] == "/models/my model"
    # one the Param schema lets through and the Hub refuses: huggingface_hub's validator
    with pytest.raises(AirflowFailException, match="Repo id must be in the form"):
        evaluate_plan({"model": "org/name/extra"})
    for dag_id, key in (("multiplt_finetune", "base_model"), ("multiplt_translate", "model"),
                        ("multiplt_testgen", "model"), ("multiplt_watch", "model")):
        with pytest.raises(ParamValidationError):
            validated(load_dag(dag_id), {key: "bigcode/x "})


def test_a_list_naming_nothing_is_refused_at_trigger_time():
    from airflow.sdk.exceptions import ParamValidationError

    for dag_id, conf in (("multiplt_evaluate", {"model": "m"}), ("multiplt_finetune", {})):
        dag = load_dag(dag_id)
        for problems in (",", " , ", "", " "):
            with pytest.raises(ParamValidationError):
                validated(dag, {**conf, "problems": problems})
        assert validated(dag, {**conf, "problems": "HumanEval_0_x,"})["problems"] == "HumanEval_0_x,"
    corpus = load_dag("multiplt_corpus")
    for benchmarks in (",", " ,, "):
        with pytest.raises(ParamValidationError):
            validated(corpus, {"source": "stdlib", "benchmarks": benchmarks})


def test_an_experiment_label_with_a_last_newline_is_refused_at_trigger_time():
    """Python's `$` (jsonschema's) matches before a last newline: "multiplt\\n" passed the Param
    and only train or results record refused it."""
    from airflow.sdk.exceptions import ParamValidationError

    for dag_id, conf in (("multiplt_evaluate", {"model": "m"}), ("multiplt_finetune", {})):
        dag = load_dag(dag_id)
        with pytest.raises(ParamValidationError):
            validated(dag, {**conf, "experiment": "multiplt\n"})
        assert validated(dag, {**conf, "experiment": "multiplt_2"})["experiment"] == "multiplt_2"


def test_the_list_pattern_refuses_what_the_commands_refuse():
    """The schema's rule for `problems` and `benchmarks` is the commands' rule, which is what
    `benchmark build --problems` and `corpus build --benchmarks` refuse."""
    import jsonschema

    from multiplt.benchmarks import build, sources
    from multiplt.commands import corpus
    from multiplt.errors import MultipltError

    source = sources.Source("s", [sources.SourceProblem("T/0", "", "f", "", None, "")], "")
    parser = argparse.ArgumentParser()
    corpus.register(parser.add_subparsers())
    for value in (",", " , ", "", " ", ",,", "T_0_f", " T_0_f ,", "T_0_f,,"):
        try:
            jsonschema.validate(value, {"pattern": schemas.LIST_PATTERN})
            schema_refuses = False
        except jsonschema.ValidationError:
            schema_refuses = True
        try:
            build.select(source, None, value)
            build_refuses = False
        except MultipltError as exc:
            build_refuses = "names no problem" in str(exc)
        args = parser.parse_args(["corpus", "build", "--source", "stdlib", "--out", "o",
                                  "--benchmarks", value])
        try:
            corpus._config(args)
            corpus_refuses = False
        except MultipltError as exc:
            corpus_refuses = "--benchmarks is empty" in str(exc)
        assert schema_refuses == build_refuses == corpus_refuses, value


def test_a_scheduled_run_checks_the_variables_values(monkeypatch, test_hub):
    """A scheduled run's settings come from the Airflow Variable, which Airflow never validates:
    `plan` checks them against the Param schemas too (and asks the test Hub for org/m's commit:
    tests/dags/test_evaluate_reruns.py)."""
    from airflow.sdk.exceptions import AirflowFailException

    from tests.dags.test_evaluate_reruns import model_repo

    model_repo(test_hub, "org/m")

    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_EVALUATE",
                       '{"rerun_models": ["org/m", "org/bad name"], "problems": "HumanEval_0_x"}')
    with pytest.raises(AirflowFailException, match="'org/bad name' is not a local folder"):
        evaluate_plan({}, SCHEDULED)
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_EVALUATE", '{"rerun_models": ["org/m"], "problems": ","}')
    with pytest.raises(AirflowFailException, match=r"Param problems: ',' does not match"):
        evaluate_plan({}, SCHEDULED)
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_EVALUATE", '{"rerun_models": ["org/m"]}')
    assert [e["model"] for e in evaluate_plan({}, SCHEDULED)] == ["org/m"]


def finetune_settings(conf: dict, events=None):
    settings = load_dag("multiplt_finetune").get_task("settings").python_callable
    params = {**defaults(schemas.FINETUNE), **conf}
    return settings(params=params, dag_run=SimpleNamespace(conf=conf),
                    triggering_asset_events=events or {})


@pytest.mark.parametrize("conf, message", LATE_REFUSALS)
def test_finetune_refuses_its_evaluations_settings_before_training(conf, message):
    from airflow.sdk.exceptions import AirflowFailException

    from airflow.sdk.exceptions import ParamValidationError

    dag = load_dag("multiplt_finetune")
    if conf.get("backend") == "openai":  # its evaluations load checkpoints: no served model
        with pytest.raises(ParamValidationError, match="openai"):
            validated(dag, conf)  # refused when the run is triggered
        return
    validated(dag, conf)  # Airflow lets it through
    with pytest.raises(AirflowFailException, match=re.escape(message)):
        finetune_settings(conf)
    # settings comes before the plan of the training, the training and the evaluations
    assert "settings" in dag.get_task("plan").upstream_task_ids
    assert "plan" in dag.get_task("train").upstream_task_ids


def test_finetune_checks_the_variable_of_an_asset_triggered_run(monkeypatch):
    """A run started by a dataset event has no conf: the Variable's settings are checked."""
    from airflow.sdk.exceptions import AirflowFailException

    from tests.dags.test_chain import event, triggering

    lua = triggering(event("multiplt_dataset_lua",
                           {"dataset_uri": "file:///DATA/translate", "lang": "lua", "rows": 3}))
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_FINETUNE", '{"backend": "replay"}')
    with pytest.raises(AirflowFailException, match="the replay backend needs --replay-source"):
        finetune_settings({}, lua)
    monkeypatch.setenv("AIRFLOW_VAR_MULTIPLT_FINETUNE", '{"problems": " , "}')
    with pytest.raises(AirflowFailException, match="Param problems"):
        finetune_settings({}, lua)


def test_finetune_refuses_python_on_the_multiplt_dataset_which_has_no_python_split():
    from airflow.sdk.exceptions import AirflowFailException

    validated(load_dag("multiplt_finetune"), {"languages": ["py"]})  # py on another dataset is fine
    with pytest.raises(AirflowFailException, match="nuprl/MultiPL-T has no 'python' split"):
        finetune_settings({"languages": ["lua", "py"]})
    # the published dataset's splits are a fixed set (multipl-t facts: lua, racket, ocaml, julia,
    # r), not those of the registry's targets: a language added to the registry has none there
    assert sorted(schemas.MULTIPLT_SPLITS) == ["julia", "lua", "ocaml", "r", "racket"]
    got = finetune_settings({"languages": ["py"], "dataset": "hf_user/python-data"})
    assert got["datasets"] == {"py": "hf_user/python-data"}


@pytest.fixture
def perl(monkeypatch):
    """A target language added to the registry (docs/languages.md): nuprl/MultiPL-T has no
    `perl` split."""
    from multiplt import languages

    lua = type(languages.get("lua"))
    monkeypatch.setitem(languages.LANGUAGES, "pl",
                        type("PerlLanguage", (lua,), {"code": "pl", "name": "perl"})())


def test_a_new_language_is_refused_on_the_published_dataset(perl):
    from multiplt import languages

    assert "pl" in languages.targets()
    published = {"lua": schemas.MULTIPLT_DATASET, "pl": schemas.MULTIPLT_DATASET}
    with pytest.raises(checks.BadParams) as refused:
        checks.splits(published)
    assert str(refused.value) == (
        "Param languages: nuprl/MultiPL-T has no 'perl' split to fine-tune pl on (its splits: "
        "julia, lua, ocaml, r, racket); train pl on a `dataset` of its own, e.g. its "
        "multiplt_translate output")
    assert refused.value.keys == ("languages", "dataset")
    with pytest.raises(checks.BadParams, match=r"'python' split .* \(its splits: julia, lua, "
                       r"ocaml, r, racket\)"):  # not the registry's targets' splits
        checks.splits({"py": schemas.MULTIPLT_DATASET})
    with pytest.raises(checks.BadParams, match="nuprl/multipl-t has no 'perl' split"):
        checks.splits({"pl": "nuprl/multipl-t"})  # Hub names ignore case
    checks.splits({"lua": schemas.MULTIPLT_DATASET, "pl": "s3://b/translate/pl"})  # its own


def test_the_default_languages_to_fine_tune_are_those_with_a_published_split(perl):
    """The Params as DAG parsing builds them with the new language in the registry: it is a
    language code and a target, but not a default language to fine-tune on."""
    import importlib

    from multiplt import languages

    try:
        importlib.reload(schemas)
        assert "pl" in schemas.LANGUAGE_CODES and "pl" in schemas.TARGET_LANGUAGES
        assert schemas.FINETUNE["languages"]["default"] == [
            code for code in languages.targets() if code != "pl"]
        checks.schema({"languages": ["pl"]}, schemas.FINETUNE)  # given by hand, with a dataset
    finally:
        languages.LANGUAGES.pop("pl")
        importlib.reload(schemas)
    assert "pl" not in schemas.LANGUAGE_CODES

def test_recipe_is_a_name_in_multiplt_recipes_a_yaml_path_or_uri():
    from airflow.sdk.exceptions import AirflowFailException

    from multiplt.training.config import recipe_names

    for params in (schemas.FINETUNE, watching.WATCH):
        assert params["recipe"]["description"] == (
            "training recipe: a name in multiplt/recipes/ (e.g. starcoderbase-1b), an absolute "
            ".yaml path, or the file:// or s3:// URI of a YAML recipe")
    assert "starcoderbase-1b" in recipe_names()
    for recipe in ("starcoderbase-1b", "tiny", "/srv/recipes/mine.yaml", "file:///r/mine.yaml",
                   "s3://bucket/recipes/mine.yaml"):
        assert finetune_settings({"recipe": recipe})["recipe"] == recipe
    with pytest.raises(AirflowFailException, match="unknown recipe 'starcoder-1b'; known: .*tiny"):
        finetune_settings({"recipe": "starcoder-1b"})
    with pytest.raises(AirflowFailException, match="Param recipe: 'recipes/mine.yaml' is a "
                       r"relative path: give an absolute path or a URI"):
        finetune_settings({"recipe": "recipes/mine.yaml"})


@pytest.mark.parametrize("recipe", ["starcoderbase-15b", "starcoderbase-15b-jl-r", "codellama-34b",
                                    "codellama-34b-jl-r", "codellama-70b"])
def test_an_fsdp_recipe_is_refused_before_the_one_process_train_task(recipe):
    """The train task runs one `multiplt train` process on one GPU: a recipe that shards over
    several GPUs would hold the whole model on that one; refused at plan, naming the way."""
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match=rf"Param recipe: {recipe} shards the model over "
                       r"several GPUs \(distributed: fsdp\).*accelerate launch --num_processes N"):
        finetune_settings({"recipe": recipe})


@pytest.mark.parametrize("dag_id, schema", [("multiplt_translate", translation.PARAMS),
                                            ("multiplt_testgen", testgen_plans.PARAMS)])
def test_translate_and_testgen_refuse_a_backend_without_its_source_or_server(dag_id, schema):
    from airflow.sdk.exceptions import AirflowFailException

    plan = load_dag(dag_id).get_task("plan").python_callable
    for conf, message in (({"backend": "replay"}, "the replay backend needs --replay-source"),
                          ({"backend": "openai"}, "the openai backend needs --api-base"),
                          ({"model": "org/a b"}, "Repo id must use alphanumeric chars")):
        validated(load_dag(dag_id), conf)  # Airflow lets it through
        with pytest.raises(AirflowFailException, match=message):
            plan("file:///DATA", params={**defaults(schema, shards=1), **conf},
                 dag_run=SimpleNamespace(conf=conf), triggering_asset_events={})


def test_checks_read_no_storage():
    """The checks run in the first task of every run: nothing there reads storage or the Hub
    (a missing source or model is the stage command's to report)."""
    settings = defaults(schemas.EVALUATE, model="org/not-on-the-hub",
                        benchmark_source="s3://no-such-bucket/mbpp.jsonl")
    checks.evaluation(settings)
    checks.training(defaults(schemas.FINETUNE, recipe="s3://no-such-bucket/r.yaml"),
                    {"lua": "s3://no-such-bucket/data"})
