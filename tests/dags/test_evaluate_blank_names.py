"""multiplt_evaluate's `revision` and `tokenizer` are refused, like `model`, with whitespace at
either end or empty (null is the way to leave them out): Airflow checks a triggered run's conf
(form, REST API, TriggerDagRunOperator). Where the plan gets them unchecked (the Airflow Variable,
a `rerun_models` entry) "" is null. Before, "" and " main" were planned: tokenizer "" hashed
into the run folder's `_g` marker, revision " main" named the `main` folder and went to generate
as `--revision " main"`, revision "" named the `main` folder."""

from __future__ import annotations

import copy

import pytest

from tests.dags.test_evaluate_reruns import plan
from tests.dags.test_pipeline_plans import defaults, load_dag
from multiplt_pipelines import params as schemas  # noqa: E402 (dags/ is on sys.path)
from multiplt_pipelines import plans  # noqa: E402

MODEL = "bigcode/starcoderbase-1b"


@pytest.mark.parametrize("name", ["revision", "tokenizer"])
@pytest.mark.parametrize("value", ["", " main", "main ", "main\n", "\tv1"])
def test_the_params_refuse_an_empty_or_padded_value(name, value):
    from airflow.sdk.definitions.param import ParamValidationError

    params = copy.deepcopy(load_dag("multiplt_evaluate").params)
    with pytest.raises(ParamValidationError, match=f"Invalid input for param {name}"):
        params.update({"model": MODEL, name: value})  # (update checks each value it sets)
        params.validate()


@pytest.mark.parametrize("name", ["revision", "tokenizer"])
def test_the_params_take_null_and_a_name(name):
    assert schemas.EVALUATE[name]["pattern"] == schemas.TRIMMED_PATTERN
    assert "no spaces at either end" in schemas.EVALUATE[name]["description"]
    for value in (None, "v1", "org/tok", "refs/pr/1"):
        params = copy.deepcopy(load_dag("multiplt_evaluate").params)
        params.update({"model": MODEL, name: value})
        assert params.validate()[name] == value


def _generate_tail(entry: dict) -> list[str]:
    argv = entry["generate"]
    return argv[argv.index("--model"):]


def test_the_plan_takes_an_empty_revision_or_tokenizer_as_none():
    given = defaults(schemas.EVALUATE, model=MODEL, languages=["lua"], shards=1)
    [none] = plans.evaluation_plan(given, "s3://b/runs", "s3://b/r.parquet")
    [empty] = plans.evaluation_plan({**given, "revision": "", "tokenizer": ""}, "s3://b/runs",
                                    "s3://b/r.parquet")
    assert empty == none
    assert none["run"] == "s3://b/runs/evaluate/humaneval-lua-bigcode_starcoderbase_1b-main-0.2"
    assert "--revision" not in none["generate"] and "--tokenizer" not in none["generate"]
    assert plans.empty_as_unset({"model": "m", "revision": "", "n": ""}) == {
        "model": "m", "revision": None, "n": ""}
    assert "tokenizer" not in plans.empty_as_unset({"revision": "v1"})


def test_the_variable_s_empty_revision_and_tokenizer_are_null(monkeypatch, tmp_path):
    """A scheduled run's settings come from the Variable, which Airflow never checks."""
    folder = tmp_path / "model"
    folder.mkdir()
    [entry] = plan(monkeypatch, {"model": str(folder), "revision": "", "tokenizer": ""})
    assert entry["revision"] is None
    assert entry["run"].endswith("-main-0.2") and "_g" not in entry["run"].split("/")[-1]
    assert "--revision" not in entry["generate"] and "--tokenizer" not in entry["generate"]


def test_a_rerun_models_entry_s_empty_revision_and_tokenizer_are_null(monkeypatch, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    given = [{"model": str(folder), "revision": "", "tokenizer": ""}]
    [entry] = plan(monkeypatch, {"rerun_models": given})
    [unset] = plan(monkeypatch, {"rerun_models": [str(folder)]})
    assert entry == unset
    assert entry["revision"] is None and "--tokenizer" not in entry["generate"]


@pytest.mark.parametrize("key", ["revision", "tokenizer"])
def test_a_padded_revision_or_tokenizer_from_the_variable_fails_the_plan(key, monkeypatch,
                                                                         tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    folder = tmp_path / "model"
    folder.mkdir()
    with pytest.raises(AirflowFailException,
                       match=rf"^rerun_models entry '{folder}': Param {key}: ' v1' does not match "
                             rf".*no spaces at either end\) \(from the Airflow Variable "
                             rf"multiplt_evaluate\)$"):
        plan(monkeypatch, {"rerun_models": [{"model": str(folder), key: " v1"}]})
    with pytest.raises(AirflowFailException, match=rf"^Param {key}: ' v1' does not match .*"
                                                   rf"\(from the Airflow Variable multiplt_evaluate\)$"):
        plan(monkeypatch, {"model": str(folder), key: " v1"})


def test_finetune_s_empty_base_revision_evaluates_the_base_at_none():
    """checkpoint_confs: base_revision "" (which multiplt_finetune's Param no longer takes, but
    a run begun before it refused it may still carry, and training reads as the default branch)
    must not reach the evaluation's `revision`, which refuses it: the triggered run would be
    refused."""
    manifests = [{"lang": "lua", "out": "s3://b/t/lua", "rows": [
        {"uri": "s3://b/t/lua/checkpoints/e1", "tag": "lua-multiplt-epoch1", "lang": "lua",
         "epoch": 1, "experiment": "multiplt"}]}]
    params = defaults(schemas.FINETUNE, base_revision="")
    base = plans.checkpoint_confs(params, manifests)[0]
    assert base["epoch"] == 0 and base["revision"] is None
    evaluate = copy.deepcopy(load_dag("multiplt_evaluate").params)
    evaluate.update(base)
    evaluate.validate()  # Airflow takes the conf
