"""DAG multiplt_translate (issue 15, point 6): wiring only; scheduled on the tests Asset; mapped
over languages x shards; sampling on the `gpu` pool; one dataset Asset per language; Params
validated when a run is triggered; the plan's command lines."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DAGS = REPO / "dags"
for _path in (str(DAGS), str(REPO / "plugins")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from multiplt_pipelines import translation as plans  # noqa: E402
from tests.support.airflow import load_dag  # noqa: E402


def defaults(**given) -> dict:
    return {**{k: v["default"] for k, v in plans.PARAMS.items()}, **given}


@pytest.fixture(scope="module")
def dag():
    return load_dag("multiplt_translate")


def test_plan_maps_languages_times_shards():
    tests = "s3://b/runs/testgen/corpus_stdlib_functions/tests"
    entries = plans.translation_plan(defaults(languages=["rkt", "ml"], shards=3, n=5, tests=tests),
                                     "s3://b/runs")
    assert [(e["lang"], e["shard"]) for e in entries] == [
        ("rkt", "0/3"), ("rkt", "1/3"), ("rkt", "2/3"), ("ml", "0/3"), ("ml", "1/3"), ("ml", "2/3")]
    ml = entries[4]
    sample = ml["sample"]
    assert sample[:5] == ["translate", "--lang", "ml", "--shard", "1/3"]
    out = "s3://b/runs/translate/testgen_corpus_stdlib_functions_tests"  # the default out of these tests
    for flag, value in (("--tests", tests), ("--out", out),
                        ("--n", "5"), ("--model", "bigcode/starcoderbase"), ("--backend", "vllm"),
                        ("--temperature", "0.8"), ("--rouge-threshold", "0.6"), ("--stage", "sample")):
        assert sample[sample.index(flag) + 1] == value
    assert ml["collect"] == sample[:-1] + ["collect"]
    # the sandbox step names only the shard's completions folder (all that is staged in)
    completions = "/".join([out, "work", "ml", "1-of-3", "completions"])
    assert ml["execute"] == ["execute", "--in", completions, "--allow-empty"]
    assert "--replay-source" not in sample and "--api-base" not in sample


def test_plan_passes_the_optional_flags():
    entry = plans.translation_plan(defaults(languages=["lua"], shards=1, backend="openai",
                                            api_base="http://fleet:8000/v1", revision="r1",
                                            out="s3://o", tests="s3://t", timeout=5), "s3://b")[0]
    assert entry["execute"][-2:] == ["--timeout", "5"]
    argv = entry["sample"]
    for flag, value in (("--api-base", "http://fleet:8000/v1"), ("--revision", "r1"),
                        ("--out", "s3://o"), ("--tests", "s3://t"), ("--backend", "openai")):
        assert argv[argv.index(flag) + 1] == value
    summary = plans.summary_command(defaults(languages=["lua", "r"], out="s3://o", tests="s3://t"),
                                    "s3://b")
    assert summary[:5] == ["translate", "--stage", "summary", "--lang", "lua,r"]


def test_dag_wiring(dag):
    tasks = dag.task_dict
    assert tasks["sample"].pool == "gpu"
    assert tasks["validate"].pool != "gpu" and tasks["collect"].pool != "gpu"
    assert tasks["collect"].upstream_task_ids >= {"validate"}
    assert tasks["validate"].upstream_task_ids >= {"sample"}
    outlets = {code: [a.name for a in tasks[f"announce_{code}"].outlets] for code in plans.SPLITS}
    assert outlets == {code: [f"multiplt_dataset_{code}"] for code in plans.SPLITS}
    for code in plans.SPLITS:
        # after summary; the settings from plan's XCom
        assert tasks[f"announce_{code}"].upstream_task_ids == {"summary", "plan"}
    assert not any(t.outlets for tid, t in tasks.items() if not tid.startswith("announce_"))


def test_scheduled_on_the_tests_asset(dag):
    assert dag.schedule.name == "multiplt_testgen_tests"
    assert dag.schedule.uri.endswith("/testgen/tests")


def validated(dag, conf: dict) -> dict:
    params = copy.deepcopy(dag.params)
    params.update(conf)
    return params.validate()


def test_params_are_validated_when_a_run_is_triggered(dag):
    from airflow.sdk.exceptions import ParamValidationError

    # the default is every target language of the registry (ordered by code)
    assert validated(dag, {})["languages"] == ["jl", "lua", "ml", "r", "rkt"]
    for bad in ({"languages": ["py"]}, {"languages": []}, {"rouge_threshold": 0},
                {"rouge_threshold": 1.5}, {"n": 0}, {"shards": 0}, {"backend": "gpt"}):
        with pytest.raises(ParamValidationError):
            validated(dag, bad)
