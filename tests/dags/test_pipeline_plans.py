"""The DAGs' plans and Params: command lines per stage, trigger-time validation, and the
fine-tuning DAG's per-checkpoint evaluation confs read from a real training manifest."""

from __future__ import annotations

import copy
import hashlib
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
for _path in (str(DAGS), str(REPO / "plugins")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from multiplt_pipelines import params as schemas  # noqa: E402
from multiplt.benchmarks.sources import benchmark_name  # noqa: E402  (the DAG's and the CLI's naming)
from multiplt_pipelines.plans import (checkpoint_confs, evaluation_plan,  # noqa: E402
                                      training_plan, trigger_run_id)
from tests.support.airflow import load_dag  # noqa: E402


def defaults(schema: dict, **given) -> dict:
    return {**{k: v["default"] for k, v in schema.items() if "default" in v}, **given}


def test_evaluation_plan_has_one_command_per_stage_and_shard():
    params = defaults(schemas.EVALUATE, model="bigcode/starcoderbase-1b", languages=["rkt", "lua"],
                      n=20, shards=3, revision="v1", experiment="multiplt", epoch=0)
    entries = evaluation_plan(params, "s3://b/runs", "s3://b/results.parquet")
    assert [e["lang"] for e in entries] == ["rkt", "lua"]
    rkt = entries[0]
    assert rkt["run"] == "s3://b/runs/evaluate/humaneval-rkt-bigcode_starcoderbase_1b-v1-0.2"
    assert rkt["build"] == ["benchmark", "build", "--source", "humaneval", "--lang", "rkt",
                            "--out", "s3://b/runs/benchmarks/humaneval-rkt.jsonl"]
    gen = rkt["generate"]
    assert gen[:5] == ["generate", "--benchmark", "s3://b/runs/benchmarks/humaneval-rkt.jsonl",
                       "--out", rkt["run"]]
    for flag, value in (("--model", "bigcode/starcoderbase-1b"), ("--revision", "v1"), ("--n", "20"),
                        ("--experiment", "multiplt"), ("--backend", "transformers")):
        assert gen[gen.index(flag) + 1] == value
    assert "--epoch" not in gen  # epoch 0: generate labels a checkpoint from its manifest
    assert "--tokenizer" not in gen and "--replay-source" not in gen and "--api-base" not in gen
    assert rkt["execute"] == [["execute", "--in", rkt["run"], "--shard", f"{k}/3"] for k in range(3)]
    assert rkt["score"] == ["score", "--in", rkt["run"], "-k", "1,10"]
    assert rkt["record"] == ["results", "record", "--scores", rkt["run"], "--store", "s3://b/results.parquet",
                             "--experiment", "multiplt"]
    # a base model's folder is shared by experiments: each records the run under its own label
    other = evaluation_plan({**params, "experiment": "other"}, "s3://b/runs", "s3://b/results.parquet")[0]
    assert other["run"] == rkt["run"] and other["record"][-2:] == ["--experiment", "other"]
    plain = evaluation_plan({**params, "experiment": None}, "s3://b/runs", "s3://b/results.parquet")[0]
    assert "--experiment" not in plain["record"]


def test_partial_benchmarks_get_their_own_names_and_replay_sources_their_language():
    assert benchmark_name("humaneval", None, None) == "humaneval"
    assert re.fullmatch(r"mbpp_s[0-9a-f]{8}_first5", benchmark_name("s3://b/mbpp.jsonl.gz", 5, None))
    assert benchmark_name("humaneval", None, "b,a") == benchmark_name("humaneval", None, "a, b")
    params = defaults(schemas.EVALUATE, model="m", languages=["r"], backend="replay",
                      replay_source="file:///x/{lang}", problems="HumanEval_0_x", limit=3)
    entry = evaluation_plan(params, "file:///d", "file:///s.parquet")[0]
    assert entry["generate"][entry["generate"].index("--replay-source") + 1] == "file:///x/r"
    assert entry["build"][-4:] == ["--limit", "3", "--problems", "HumanEval_0_x"]


def test_generation_settings_off_the_defaults_get_their_own_run_folder():
    """generate refuses a folder recorded with another max_new_tokens (or top_p, backend), and
    the DAG has no --out to give: such a run needs a folder of its own."""
    params = defaults(schemas.EVALUATE, model="m", languages=["lua"])
    plan = lambda **given: evaluation_plan({**params, **given}, "file:///d", "file:///s.parquet")[0]  # noqa: E731
    default = plan()["run"]
    assert default == "file:///d/evaluate/humaneval-lua-m-main-0.2"
    longer, nucleus = plan(max_new_tokens=1024)["run"], plan(top_p=0.9)["run"]
    assert len({default, longer, nucleus, plan(backend="vllm")["run"]}) == 4
    # a tokenizer other than the model's: generate refuses the default run's folder (its record
    # names the model's tokenizer), so it gets a folder of its own
    tokenized = plan(tokenizer="other/tokenizer")["run"]
    assert tokenized.startswith("file:///d/evaluate/humaneval_g") and tokenized not in (default, longer)
    assert plan(tokenizer="other/tokenizer", max_new_tokens=1024)["run"] not in (tokenized, longer)
    # a checkpoint's conf names the tokenizer its manifest row names (older rows: the base's):
    # part of the checkpoint its revision tag names, so still the plain name
    tag = "lua-x-epoch1"
    checkpoint = plan(revision=tag, tokenizer="bigcode/starcoderbase-1b", checkpoint_uri="file:///t/ckpt")
    assert checkpoint["run"] == plan(revision=tag)["run"] == "file:///d/evaluate/humaneval-lua-m-lua_x_epoch1-0.2"
    # only with a checkpoint tag as revision (checks.checkpoint refuses the rest): a hand run
    # that sets checkpoint_uri on another revision keeps the tokenizer in its folder's hash
    assert plan(revision="v1", tokenizer="other/tokenizer", checkpoint_uri="file:///t/ckpt")["run"] \
        == plan(revision="v1", tokenizer="other/tokenizer")["run"] != plan(revision="v1")["run"]
    assert longer.startswith("file:///d/evaluate/humaneval_g") and longer.endswith("-lua-m-main-0.2")
    assert plan(max_new_tokens=1024)["run"] == longer           # stable across runs
    assert plan(max_new_tokens=1024)["build"] == plan()["build"]  # same benchmark file


def test_two_sources_of_one_file_name_get_their_own_benchmark_files_and_run_folders():
    """`s3://a/v1/mbpp.jsonl` and `s3://a/v2/mbpp.jsonl` would share `benchmarks/mbpp-lua.jsonl`
    (the second build overwriting the first's file) and one run folder: a path or URI source's
    name carries a hash of the source, a catalog source keeps its name."""
    params = defaults(schemas.EVALUATE, model="m", languages=["lua"])
    plan = lambda source: evaluation_plan({**params, "benchmark_source": source},  # noqa: E731
                                          "file:///d", "file:///s.parquet")[0]
    one, two = plan("s3://a/v1/mbpp.jsonl"), plan("s3://a/v2/mbpp.jsonl")
    assert one["run"] != two["run"] and one["build"][-1] != two["build"][-1]
    named = "mbpp_s" + hashlib.sha256(b"s3://a/v1/mbpp.jsonl").hexdigest()[:8]
    assert one["build"][-1] == f"file:///d/benchmarks/{named}-lua.jsonl"
    assert one["run"] == f"file:///d/evaluate/{named}-lua-m-main-0.2"
    assert benchmark_name("s3://a/v1/mbpp.jsonl", 5, None) == named + "_first5"
    assert plan("humaneval")["run"] == "file:///d/evaluate/humaneval-lua-m-main-0.2"


def test_evaluation_plan_passes_the_servers_url_to_the_openai_backend():
    params = defaults(schemas.EVALUATE, model="served-model", languages=["lua"], backend="openai",
                      api_base="http://gpu-host:8000/v1")
    gen = evaluation_plan(params, "file:///d", "file:///s.parquet")[0]["generate"]
    assert gen[gen.index("--backend") + 1] == "openai"
    assert gen[gen.index("--api-base") + 1] == "http://gpu-host:8000/v1"


def validated(dag, conf: dict) -> dict:
    """What Airflow does with a run's conf when it is triggered: merge into the DAG's Params, validate."""
    params = copy.deepcopy(dag.params)
    params.update(conf)
    return params.validate()


def test_evaluate_params_are_validated_when_a_run_is_triggered():
    from airflow.sdk.exceptions import ParamValidationError

    dag = load_dag("multiplt_evaluate")
    assert validated(dag, {"model": "m", "languages": ["rkt"], "n": 2})["model"] == "m"
    for bad in ({}, {"model": ""}, {"model": "m", "languages": ["cobol"]},
                {"model": "m", "languages": []}, {"model": "m", "n": 0},
                {"model": "m", "backend": "gpt"}, {"model": "m", "experiment": "Bad Name"},
                {"model": "m", "epoch": -1}, {"model": "m", "temperature": 3}):
        with pytest.raises(ParamValidationError):
            validated(dag, bad)


def test_finetune_base_model_has_a_default_as_a_scheduled_dag_needs():
    from airflow.sdk.exceptions import ParamValidationError

    dag = load_dag("multiplt_finetune")
    assert validated(dag, {})["base_model"] == "bigcode/starcoderbase-1b"
    assert validated(dag, {"base_model": "b"})["languages"] == ["jl", "lua", "ml", "r", "rkt"]
    with pytest.raises(ParamValidationError, match="base_model"):
        validated(dag, {"base_model": ""})


def test_training_plan_one_train_per_language():
    params = defaults(schemas.FINETUNE, base_model="bigcode/starcoderbase-1b", languages=["rkt", "ml"],
                      dataset="s3://b/data/{lang}.parquet", epochs=2)
    entries = training_plan(params, "s3://b/runs")
    assert [e["out"] for e in entries] == ["s3://b/runs/training/bigcode_starcoderbase_1b-multiplt-rkt",
                                           "s3://b/runs/training/bigcode_starcoderbase_1b-multiplt-ml"]
    argv = entries[1]["train"]
    for flag, value in (("--lang", "ml"), ("--experiment", "multiplt"), ("--epochs", "2"),
                        ("--dataset", "s3://b/data/ml.parquet"), ("--base", "bigcode/starcoderbase-1b"),
                        ("--recipe", "starcoderbase-1b"), ("--out", entries[1]["out"])):
        assert argv[argv.index(flag) + 1] == value
    moved = training_plan({**params, "training_root": "file:///d/main_job/t/training/"}, "s3://b/runs")
    assert moved[0]["out"] == "file:///d/main_job/t/training/bigcode_starcoderbase_1b-multiplt-rkt"


def _manifest_row(out, lang, epoch, experiment="multiplt"):
    return {"uri": f"{out}/checkpoints/epoch{epoch}", "epoch": epoch, "step": 10 * epoch,
            "tag": f"{lang}-{experiment}-epoch{epoch}", "eval_loss": 1.0 / epoch, "lang": lang,
            "experiment": experiment, "base": "base/model", "tokenizer": "base/model"}


def test_checkpoints_task_names_every_checkpoint_explicitly(tmp_path):
    from multiplt.storage import manifest

    dag = load_dag("multiplt_finetune")
    params = defaults(schemas.FINETUNE, base_model="base/model", languages=["rkt", "lua"], n=4,
                      backend="replay", replay_source="file:///r/{lang}")
    entries = training_plan(params, f"file://{tmp_path}")
    for entry in entries:
        for epoch in (1, 2):
            manifest.append(entry["out"], _manifest_row(entry["out"], entry["lang"], epoch))
    triggers = dag.get_task("checkpoints").python_callable(entries, params, run_id="manual__1")
    confs = [t["conf"] for t in triggers]
    assert all(c["backend"] == "replay" and c["replay_source"] == "file:///r/{lang}" for c in confs)
    assert confs[0]["model"] == "base/model" and confs[0]["epoch"] == 0
    assert confs[0]["languages"] == ["rkt", "lua"]
    ckpts = confs[1:]
    assert [(c["languages"], c["revision"], c["epoch"]) for c in ckpts] == [
        (["rkt"], "rkt-multiplt-epoch1", 1), (["rkt"], "rkt-multiplt-epoch2", 2),
        (["lua"], "lua-multiplt-epoch1", 1), (["lua"], "lua-multiplt-epoch2", 2)]
    for conf, entry in zip(ckpts, [entries[0]] * 2 + [entries[1]] * 2):
        assert conf["model"] == entry["out"]  # the training output; the tag picks the checkpoint
        assert conf["checkpoint_uri"] == f"{entry['out']}/checkpoints/epoch{conf['epoch']}"
        assert conf["experiment"] == "multiplt" and conf["n"] == 4 and conf["tokenizer"] == "base/model"
        # every key the evaluate DAG would otherwise fill from a default is given explicitly
        assert set(conf) >= {"model", "revision", "languages", "experiment", "epoch", "checkpoint_uri"}
        assert set(conf) <= set(schemas.EVALUATE)
        assert set(schemas.SAMPLING) <= set(conf)  # evaluation settings pass through, replay included
    ids = [t["trigger_run_id"] for t in triggers]
    assert len(set(ids)) == len(ids)
    assert ids == [trigger_run_id("manual__1", c) for c in confs]  # stable across retries
    # newer manifest rows name the checkpoint itself as the tokenizer: the default, not a flag
    row = {**_manifest_row(entries[0]["out"], "rkt", 3)}
    row["tokenizer"] = row["uri"]
    manifest.append(entries[0]["out"], row)
    confs = [t["conf"] for t in dag.get_task("checkpoints").python_callable(entries, params, run_id="m")]
    assert [c["tokenizer"] for c in confs if c.get("revision") == "rkt-multiplt-epoch3"] == [None]


def test_checkpoints_are_read_after_training_not_beside_it():
    dag = load_dag("multiplt_finetune")
    assert "train" in dag.get_task("checkpoints").upstream_task_ids
    assert "checkpoints" in dag.get_task("evaluate_checkpoints").upstream_task_ids
    assert "evaluate_checkpoints" in dag.get_task("announce_checkpoints").upstream_task_ids


def test_checkpoint_confs_refuse_missing_or_foreign_checkpoints(tmp_path):
    params = defaults(schemas.FINETUNE, base_model="base/model", languages=["rkt"])
    with pytest.raises(ValueError, match="no checkpoints"):
        checkpoint_confs(params, [{"lang": "rkt", "out": "o", "rows": []}])
    with pytest.raises(ValueError, match="not rkt/multiplt"):
        checkpoint_confs(params, [{"lang": "rkt", "out": "o", "rows": [_manifest_row("o", "lua", 1)]}])
    with pytest.raises(ValueError, match="lacks"):
        checkpoint_confs(params, [{"lang": "rkt", "out": "o", "rows": [{"tag": "rkt-multiplt-epoch1"}]}])


def test_finetune_waits_for_its_evaluations_at_the_configured_interval(monkeypatch):
    """`[multiplt] trigger_poke_seconds` sets how often finetune checks its evaluation runs;
    a value that is not a positive number is refused when the DAG file is parsed."""
    assert load_dag("multiplt_finetune").get_task("evaluate_checkpoints").partial_kwargs[
        "poke_interval"] == 60
    monkeypatch.setenv("AIRFLOW__MULTIPLT__TRIGGER_POKE_SECONDS", "7")
    assert load_dag("multiplt_finetune").get_task("evaluate_checkpoints").partial_kwargs[
        "poke_interval"] == 7
    monkeypatch.setenv("AIRFLOW__MULTIPLT__TRIGGER_POKE_SECONDS", "0")
    with pytest.raises(ValueError, match="trigger_poke_seconds must be a positive number"):
        load_dag("multiplt_finetune")
