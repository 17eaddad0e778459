"""On the docker runtime a stage container sees only the host folders docker_stage bind-mounts
(file_roots: the data root and the results store's folder). A run's Param naming a local path
elsewhere (`source=/home/me/code`, a benchmarks JSONL, a recipe .yaml, a base_model folder, a
dataset, an output) passed `plan` and failed late inside the container (`--source ... does not
exist` while the folder is on the host), or wrote into a container removed when it ended: plan
refuses it, naming the Param, the path and the mounted folders. The local runtime is unchanged."""

from __future__ import annotations

import re

import pytest

from tests.dags.test_run_conf import (corpus_plan, evaluate_plan, finetune_settings,
                                      generation_plan, publish_plan, watch_plan)


def docker(monkeypatch, data_uri: str, results_store: str) -> None:
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RUNTIME", "docker")
    monkeypatch.setenv("AIRFLOW__MULTIPLT__DATA_URI", data_uri)
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RESULTS_STORE", results_store)


@pytest.fixture
def roots(monkeypatch, tmp_path):
    """The docker runtime with the embedded defaults: file:// runs and a results store in a
    sibling folder; the folders its stage containers mount."""
    data = tmp_path / "data"
    docker(monkeypatch, f"file://{data}/runs", f"file://{data}/results/results.parquet")
    return [str(data / "runs"), str(data / "results")]


def plan_testgen(conf: dict):
    return generation_plan("multiplt_testgen", conf)


def plan_translate(conf: dict):
    return generation_plan("multiplt_translate", conf)


def refusal(key: str, value: str, roots: list[str]) -> str:
    return (f"Param {key}: {value!r} is not in a folder the docker runtime's stage containers see "
            f"(they mount only {', '.join(roots)}); put it under one of them, or give a storage "
            "URI such as s3://...")


def _refused(plan, conf: dict, key: str, value: str, roots: list[str]) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException) as raised:
        plan(conf)
    assert str(raised.value) == refusal(key, value, roots), conf


# (plan, conf, the Param and value refused): every Param that names a place a stage reads or writes
OUTSIDE = [
    (corpus_plan, {"source": "/home/me/code"}, "source", "/home/me/code"),
    (corpus_plan, {"source": "file:///home/me/code"}, "source", "file:///home/me/code"),
    (corpus_plan, {"source": "/srv/code", "out": "/srv/corpus"}, "source", "/srv/code"),
    (corpus_plan, {"source": "s3://bucket/code", "out": "/srv/corpus"}, "out", "/srv/corpus"),
    (corpus_plan, {"source": "s3://bucket/code", "benchmarks": "humaneval, /home/me/mbpp.jsonl"},
     "benchmarks", "/home/me/mbpp.jsonl"),
    (evaluate_plan, {"benchmark_source": "/home/me/mbpp.jsonl"}, "benchmark_source",
     "/home/me/mbpp.jsonl"),
    (evaluate_plan, {"model": "/models/m"}, "model", "/models/m"),
    (evaluate_plan, {"tokenizer": "/models/tok"}, "tokenizer", "/models/tok"),
    (evaluate_plan, {"backend": "replay", "replay_source": "file:///replays/{lang}"},
     "replay_source", "file:///replays/{lang}"),
    (finetune_settings, {"recipe": "/home/me/recipe.yaml"}, "recipe", "/home/me/recipe.yaml"),
    (finetune_settings, {"base_model": "/models/base"}, "base_model", "/models/base"),
    (finetune_settings, {"dataset": "/home/me/data-{lang}"}, "dataset", "/home/me/data-{lang}"),
    (finetune_settings, {"training_root": "file:///srv/training"}, "training_root",
     "file:///srv/training"),
    (plan_testgen, {"functions": "/srv/functions"}, "functions", "/srv/functions"),
    (plan_translate, {"tests": "s3://bucket/tests", "out": "/srv/translated"}, "out",
     "/srv/translated"),
    (publish_plan, {"dataset_uri": "s3://bucket/d", "dry_run": "/srv/dry"}, "dry_run", "/srv/dry"),
    (watch_plan, {"model": "/models/m"}, "model", "/models/m"),
]


@pytest.mark.parametrize("plan, conf, key, value", OUTSIDE,
                         ids=[f"{c[0].__name__}-{c[2]}-{i}" for i, c in enumerate(OUTSIDE)])
def test_a_local_path_outside_the_mounted_folders_is_refused_on_docker(roots, plan, conf, key,
                                                                       value):
    _refused(plan, conf, key, value, roots)


def test_a_path_that_leaves_a_mounted_folder_through_dotdot_is_outside(roots):
    escaping = f"{roots[0]}/../../../etc/code"
    _refused(corpus_plan, {"source": escaping}, "source", escaping, roots)


def test_local_paths_in_the_mounted_folders_and_remote_uris_pass_on_docker(roots):
    runs, results = roots
    assert corpus_plan({"source": f"{runs}/code", "out": f"file://{runs}/corpus",
                        "benchmarks": f"humaneval,{results}/mbpp.jsonl"})["out"] == f"file://{runs}/corpus"
    assert corpus_plan({"source": runs})
    assert corpus_plan({"source": "hf://datasets/org/code", "benchmarks": "org/mbpp"})
    assert evaluate_plan({"model": f"{runs}/models/m", "tokenizer": f"file://{runs}/tok",
                          "benchmark_source": f"{runs}/mbpp.jsonl"})[0]["lang"] == "lua"
    assert evaluate_plan({"model": "org/name", "benchmark_source": "s3://bucket/mbpp.jsonl"})
    # a training output's checkpoint_uri is never read by a stage (generate reads the manifest)
    assert evaluate_plan({"checkpoint_uri": "/elsewhere/checkpoints/lua-x-epoch1",
                          "revision": "lua-x-epoch1"})
    assert finetune_settings({"base_model": f"{runs}/base", "dataset": f"{runs}/data-{{lang}}",
                              "training_root": f"{runs}/training"})["datasets"]["lua"] == f"{runs}/data-lua"
    assert generation_plan("multiplt_testgen", {"functions": f"file://{runs}/functions"})


@pytest.mark.parametrize("path, inside", [
    ("/d/runs", True), ("/d/runs/x/y", True), ("/d/results/r.parquet", True),
    ("/d/runs/../results/x", True), ("/d/runs/../x", False), ("/d/runsx", False), ("/d", False),
    ("//d/runs/x", True), ("/home/me/code", False)])
def test_mounted_is_inside_a_root_after_normalising(path, inside):
    from multiplt_airflow.docker_stage import mounted

    assert mounted(path, ["/d/runs", "/d/results"]) is inside
    assert mounted(path, []) is False


def test_no_local_folder_is_mounted_when_the_storage_is_remote(monkeypatch):
    """An s3:// data root and results store: no host folder is in a container."""
    from airflow.sdk.exceptions import AirflowFailException

    docker(monkeypatch, "s3://bucket/runs", "s3://bucket/results/results.parquet")
    with pytest.raises(AirflowFailException, match=re.escape(
            "Param source: '/srv/code' is not in a folder the docker runtime's stage containers "
            "see (they mount no host folder ([multiplt] data_uri and results_store are not "
            "local)); put it under one of them, or give a storage URI such as s3://...")):
        corpus_plan({"source": "/srv/code"})
    assert corpus_plan({"source": "s3://bucket/code"})


def test_the_folders_plan_allows_are_those_a_docker_stage_mounts(roots):
    """One source of truth: the check asks docker_stage for what it mounts."""
    from multiplt_airflow.stage import stage_task
    from multiplt_pipelines import checks
    from tests.dags.test_stage_runtime import _dag

    with _dag("docker_mounts_of_a_stage"):
        corpus = stage_task("build", ["corpus", "build", "--source", "s3://bucket/x", "--out", "s3://bucket/y"])
    binds = [m["Source"] for m in corpus.mounts if m["Type"] == "bind"]
    assert sorted(checks.stage_roots()) == sorted(binds) == sorted(roots)


def test_the_local_runtime_sees_every_folder(monkeypatch):
    """Its stages run where plan runs: the same Params pass as before."""
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RUNTIME", "local")
    assert corpus_plan({"source": "/home/me/code", "out": "/srv/corpus",
                        "benchmarks": "humaneval,/home/me/mbpp.jsonl"})["out"] == "/srv/corpus"
    assert evaluate_plan({"benchmark_source": "/home/me/mbpp.jsonl"})[0]["lang"] == "lua"
    assert generation_plan("multiplt_testgen", {"functions": "/srv/functions"})
    [command] = publish_plan({"dataset_repo": "me/x", "dataset_uri": "s3://bucket/d", "dry_run": "/srv/dry"})
    assert "/srv/dry" in " ".join(command)
