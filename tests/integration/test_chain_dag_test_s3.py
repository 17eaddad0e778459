"""The whole chain under dag.test() with every output on S3 (the moto server): multiplt_corpus
-> multiplt_testgen -> multiplt_translate (Lua) -> multiplt_finetune -> multiplt_evaluate (the
checkpoint) -> multiplt_publish (the test Hub). Each run's conf is what the chain resolves from
the previous run's emitted Asset event extra (dags/multiplt_pipelines/chain.py), as an
Asset-triggered run would; test generation and translation replay the chain fixture's recorded
right and wrong completions (tests/fixtures/chain.py), so every stage keeps exactly the rows it
says. tests/integration/test_main_job.py runs the same chain through the REST API.

dag.test() has no scheduler: the evaluation run that multiplt_finetune triggers for its checkpoint
would never start, so its trigger task here does not wait for it; the test then runs
multiplt_evaluate itself with the conf of the run that was triggered.
"""

from __future__ import annotations

import pytest

from tests.fixtures import chain as fx
from tests.integration.test_chain_dag_run import asset_events, task_states
from tests.support.airflow import load_dag
from tests.support.chain_folders import stored_rows
from tests.support.hub import hub_dataset_rows

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _one_event(run) -> dict:
    assert run.state == "success", task_states(run)
    [(name, extra)] = asset_events(run)
    return {"name": name, "uri": "", "extra": extra}


def _unpause(dag_id: str) -> None:
    from sqlalchemy import update

    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        session.execute(update(DagModel).where(DagModel.dag_id == dag_id).values(is_paused=False))


def _triggered_confs(dag_id: str) -> list[dict]:
    from sqlalchemy import select

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return [dict(r.conf or {}) for r in session.scalars(
            select(DagRun).where(DagRun.dag_id == dag_id))]


def test_the_chain_under_dag_test_on_s3(airflow_db, s3_bucket, test_hub, tiny_model, tmp_path,
                                        monkeypatch):
    from huggingface_hub import HfApi

    from multiplt import storage
    from multiplt.results import read_store

    monkeypatch.setenv("AIRFLOW__MULTIPLT__DATA_URI", f"{s3_bucket}/data")
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RESULTS_STORE", f"{s3_bucket}/results/results.parquet")
    monkeypatch.setenv("MULTIPLT_HUB_BACKOFF", "0.01")
    from multiplt_pipelines import chain  # dags/ is on sys.path (tests/support/airflow.py)

    rows = fx.function_rows()
    testgen_replay, lua_replay = f"{s3_bucket}/replay/testgen.jsonl", f"{s3_bucket}/replay/lua.jsonl"
    storage.write_jsonl(testgen_replay, fx.testgen_replay(rows))
    storage.write_jsonl(lua_replay, fx.lua_replay(rows))

    # corpus: 8 functions, 7 kept
    run = load_dag("multiplt_corpus").test(run_conf={
        "source": fx.write_corpus(tmp_path / "corpus"), "out": f"{s3_bucket}/corpus", "shards": 1,
        "dedup_buckets": 1})
    event = _one_event(run)
    assert (event["name"], event["extra"]["rows"]) == ("multiplt_corpus_functions", fx.CORPUS_KEPT)
    assert stored_rows(event["extra"]["functions_uri"]) == fx.CORPUS_KEPT
    _unpause("multiplt_evaluate")  # every DAG of the folder is in the database now

    # testgen on the event's functions: 4 functions keep a test
    conf = chain.chained_input({}, [event], asset=chain.FUNCTIONS_ASSET, key="functions_uri",
                               param="functions")
    run = load_dag("multiplt_testgen").test(run_conf={
        **conf, "out": f"{s3_bucket}/testgen", "backend": "replay", "replay_source": testgen_replay,
        "n": fx.N, "shards": 1})
    event = _one_event(run)
    assert (event["name"], event["extra"]["rows"]) == ("multiplt_testgen_tests", len(fx.TESTS))
    funnel = storage.read_json(event["extra"]["funnel_uri"])
    assert (funnel["steps"][0]["in"], funnel["steps"][-1]["out"]) == (fx.CORPUS_KEPT, len(fx.TESTS))

    # translate the event's tests into Lua: 8 samples, the 3 right ones kept
    conf = chain.chained_input({}, [event], asset=chain.TESTS_ASSET, key="tests_uri", param="tests")
    run = load_dag("multiplt_translate").test(run_conf={
        **conf, "languages": ["lua"], "out": f"{s3_bucket}/translate", "backend": "replay",
        "replay_source": lua_replay, "n": fx.N, "shards": 1})
    dataset = _one_event(run)
    assert (dataset["name"], dataset["extra"]["rows"]) == ("multiplt_dataset_lua", len(fx.LUA_KEPT))
    counts = storage.read_json(dataset["extra"]["funnel_uri"])["lua"]
    assert [counts[k] for k in ("functions_in", "translations_sampled", "passed", "after_rouge_l")] == [
        len(fx.TESTS), len(fx.TESTS) * fx.N, 3, 3]
    kept = [storage.read_parquet(u) for u in storage.ls(f"{dataset['extra']['dataset_uri']}/data")]
    assert sorted((e, s) for df in kept for e, s in zip(df["entrypoint"], df["sample"])) == fx.LUA_KEPT

    # finetune the tiny model on the announced dataset: one epoch, one checkpoint
    params, datasets = chain.chained_datasets({"languages": [], "dataset": ""}, [dataset])
    finetune = load_dag("multiplt_finetune")
    finetune.get_task("evaluate_checkpoints").partial_kwargs["wait_for_completion"] = False
    run = finetune.test(run_conf={
        "languages": params["languages"], "dataset": datasets["lua"], "base_model": tiny_model,
        "experiment": "chain_s3", "recipe": "tiny", "epochs": 1, "evaluate_base": False,
        "backend": "transformers", "n": fx.N, "limit": 1, "max_new_tokens": 16, "shards": 1})
    checkpoints = _one_event(run)
    [output] = checkpoints["extra"]["outputs"]
    assert (checkpoints["name"], output["lang"], output["dataset_uri"]) == (
        "multiplt_checkpoints", "lua", f"{s3_bucket}/translate")
    assert output["out"].startswith(f"{s3_bucket}/data/training/")
    [checkpoint] = storage.read_jsonl(storage.join(output["out"], "manifest.jsonl"))
    assert (checkpoint["epoch"], checkpoint["tag"]) == (1, "lua-chain_s3-epoch1")

    # evaluate the checkpoint with the conf multiplt_finetune triggered: one results row
    [conf] = _triggered_confs("multiplt_evaluate")
    assert (conf["model"], conf["revision"], conf["epoch"]) == (output["out"], "lua-chain_s3-epoch1", 1)
    run = load_dag("multiplt_evaluate").test(run_conf=conf)
    assert run.state == "success", task_states(run)
    [row] = [r for r in read_store(f"{s3_bucket}/results/results.parquet").to_dicts() if r["k"] == 1]
    assert (row["model"], row["epoch"], row["lang"], row["num_problems"], row["n"]) == (
        output["out"], 1, "lua", 1, fx.N)

    # publish the dataset and the checkpoint named by the events to the test Hub
    run = load_dag("multiplt_publish").test(run_conf={
        "dataset_repo": "ns/chain-s3", "checkpoints_repo": "ns/chain-s3",
        "dataset_uri": dataset["extra"]["dataset_uri"],
        "training_outputs": [o["out"] for o in checkpoints["extra"]["outputs"]]})
    assert run.state == "success", task_states(run)
    assert hub_dataset_rows("ns/chain-s3") == len(fx.LUA_KEPT)
    assert [t.name for t in HfApi().list_repo_refs("ns/chain-s3").tags] == ["lua-chain_s3-epoch1"]

