"""`multiplt_corpus`: its plan (one build per shard, one dedup per bucket, the merge), Params
validated at trigger time, and its wiring (mapped stages in order, the Asset on the merge)."""

from __future__ import annotations

import pytest

from tests.dags.test_pipeline_plans import defaults, load_dag, validated
from multiplt_pipelines.corpus import CORPUS, corpus_plan  # noqa: E402 (dags/ is on sys.path)


def test_plan_has_a_command_per_shard_and_bucket_then_the_merge():
    params = defaults(CORPUS, source="hf://datasets/bigcode/the-stack-dedup/data/python", shards=3,
                      dedup_buckets=2, workers=2, benchmarks="humaneval,s3://b/mbpp.jsonl")
    plan = corpus_plan(params, "s3://b/runs/")
    out = "s3://b/runs/corpus/hf_datasets_bigcode_the_stack_dedup_data_python"
    assert plan["out"] == out
    assert plan["shards"][1] == ["corpus", "build", "--source", params["source"], "--out", out,
                                 "--benchmarks", "humaneval,s3://b/mbpp.jsonl", "--workers", "2",
                                 "--shard", "1/3"]
    assert len(plan["shards"]) == 3
    assert plan["dedup"] == [["corpus", "dedup", "--out", out, "--bucket", f"{b}/2"] for b in range(2)]
    assert plan["merge"] == [["corpus", "merge", "--out", out]]
    explicit = corpus_plan(defaults(CORPUS, source="stdlib", out="file:///x/", limit=5), "s3://b")
    assert explicit["out"] == "file:///x" and explicit["shards"][0][-4:] == ["--limit", "5", "--shard", "0/4"]


def test_every_plan_argv_parses_with_the_cli():
    from multiplt import cli

    plan = corpus_plan(defaults(CORPUS, source="stdlib", limit=3), "file:///data")
    parser = cli.build_parser()
    for argv in [*plan["shards"], *plan["dedup"], *plan["merge"]]:
        assert parser.parse_args(argv).func


def test_params_are_validated_when_a_run_is_triggered():
    from airflow.sdk.exceptions import ParamValidationError

    dag = load_dag("multiplt_corpus")
    assert validated(dag, {"source": "stdlib"})["shards"] == 4
    for bad in ({}, {"source": "stdlib", "shards": 0}, {"source": ""},
                {"source": "stdlib", "dedup_buckets": "two"}):
        with pytest.raises(ParamValidationError):
            validated(dag, bad)


def test_wiring_maps_shards_then_dedup_then_merge_then_announce_updates_the_asset():
    dag = load_dag("multiplt_corpus")
    tasks = {t.task_id: t for t in dag.tasks}
    assert {"build_shard", "dedup", "merge"} <= set(tasks)
    assert "build_shard" in tasks["dedup"].upstream_task_ids
    assert "dedup" in tasks["merge"].upstream_task_ids
    assert "merge" in tasks["announce"].upstream_task_ids
    assert [a.name for a in tasks["announce"].outlets] == ["multiplt_corpus_functions"]
    assert not tasks["merge"].outlets  # the event comes from announce, with its extra
    assert all(hasattr(tasks[t], "expand_input") for t in ("build_shard", "dedup", "merge"))
