"""multiplt_finetune end to end on the embedded Airflow of the session (issue 7, point 3).

Triggered through the REST API v2 on the tiny model: `multiplt train` for 1 epoch on a few dozen
short Lua functions (a tiny recipe, so training takes seconds), then one `multiplt_evaluate` run
per checkpoint of the training manifest plus the base model as epoch 0, all with the replay
backend on the reference solutions of 2 problems (completions [ok, bad]: pass@1 is exactly 0.5).
Checked: the manifest's checkpoints and tags, one results-store row per epoch with the
checkpoint's identity, and that every evaluate run's conf named its checkpoint explicitly.

The session's results store is shared with the other e2e tests (the leaderboard checks its own
rows and series), so this module removes its experiment's rows again when it is done.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

import pytest

from tests.support.airflow import task_log, wait_for_run
from tests.support.evaluated_airflow import replay_sources

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
for _path in (str(REPO / "dags"), str(REPO / "plugins")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

LANG = "lua"
EXPERIMENT = "e2e_finetune"
PROBLEMS = 2
EPOCHS = 1  # one checkpoint: with the base model, two evaluate runs (Airflow runs two at a time)
# Short sequences, small batches: a few optimizer steps per epoch on the CPU. The recipe says 2
# epochs; the run's `epochs` Param (1) must override it. (A checkpoint for every epoch of a longer
# training is tests/integration/test_train.py's.)
TINY_RECIPE = """\
seq_len: 64
batch_size: 4
micro_batch_size: 2
epochs: 2
lr: 1.0e-3
lr_scheduler: cosine
warmup_steps: 1
weight_decay: 0.0
max_grad_norm: 1.0
eval_fraction: 0.1
precision: fp32
distributed: ddp
gradient_checkpointing: false
log_every: 5
"""
RUN_TIMEOUT = float(os.environ.get("MULTIPLT_E2E_RUN_TIMEOUT", "600"))


def lua_documents(n: int = 40, seed: int = 0) -> list[str]:
    """Short Lua functions in the style of the MultiPL-T data."""
    r = random.Random(seed)
    docs = []
    for i in range(n):
        name = r.choice(["add", "sum_list", "count_evens", "my_max", "fact", "fib"]) + str(i)
        k = r.randint(1, 50)
        docs.append(f"-- {name}: returns a number\nlocal function {name}(x)\n"
                    f"  if x < {k} then\n    return x + {k}\n  end\n"
                    f"  return x * {r.randint(2, 9)}\nend\n")
    return docs


def _failed_logs(client, dag_id: str, run_id: str, limit: int = 3) -> str:
    failed = [ti for ti in client.task_instances(dag_id, run_id)
              if ti["state"] not in ("success", "skipped")]
    return "\n".join(
        f"--- {dag_id} {run_id} {ti['task_id']}[{ti['map_index']}] {ti['state']}\n"
        + task_log(client, dag_id, run_id, ti["task_id"], max(ti["try_number"], 1),
                   ti["map_index"])[-3000:]
        for ti in failed[:limit])


def _drop_experiment_rows(store: str, experiment: str) -> None:
    """Remove this module's rows from the shared results store (under the store's own lock)."""
    import polars as pl

    from multiplt import storage
    from multiplt.results import read_store
    from multiplt.results.store import _local_lock

    if not storage.exists(store):
        return
    with _local_lock(store):
        table = read_store(store)
        kept = table.filter(pl.col("experiment").is_null() | (pl.col("experiment") != experiment))
        if kept.height != table.height:
            storage.write_parquet(store, kept)


@pytest.fixture(scope="module")
def finetuned(embedded_airflow, tiny_model, tmp_path_factory):
    """One multiplt_finetune run, polled to its end: (client, run id, conf, problems, seconds)."""
    from multiplt import storage

    root = tmp_path_factory.mktemp("finetune")
    corpus = root / "corpus"
    storage.write_jsonl(str(corpus / f"{LANG}.jsonl"), [{"content": d} for d in lua_documents()])
    recipe = root / "tiny-recipe.yaml"
    recipe.write_text(TINY_RECIPE)
    replay, problems = replay_sources(f"file://{root}/refsol", (LANG,), PROBLEMS)

    client = embedded_airflow.client
    # The finetune DAG triggers multiplt_evaluate with fail_when_dag_is_paused.
    client.wait_for_dag("multiplt_evaluate")
    client.set_paused("multiplt_evaluate", False)
    conf = {"base_model": tiny_model, "languages": [LANG], "experiment": EXPERIMENT,
            "recipe": str(recipe), "dataset": f"file://{corpus}/{{lang}}.jsonl", "epochs": EPOCHS,
            "backend": "replay", "replay_source": replay, "problems": ",".join(problems),
            "n": 2, "shards": 1, "max_new_tokens": 64}
    store = str(embedded_airflow.data_dir / "results" / "results.parquet")
    started = time.monotonic()
    try:
        run_id = client.trigger("multiplt_finetune", conf)
        state = wait_for_run(client, "multiplt_finetune", run_id, timeout=RUN_TIMEOUT)
        seconds = time.monotonic() - started
        if state != "success":
            logs = [_failed_logs(client, "multiplt_finetune", run_id)]
            for run in _evaluate_runs(client):
                if run["state"] != "success":
                    logs.append(_failed_logs(client, "multiplt_evaluate", run["dag_run_id"]))
            pytest.fail(f"multiplt_finetune ended {state} after {seconds:.0f}s; conf "
                        f"{json.dumps(conf)}\n" + "\n".join(logs))
        print(f"multiplt_finetune {run_id}: {state} in {seconds:.0f}s")
        yield client, run_id, conf, problems, store
    finally:
        _drop_experiment_rows(store, EXPERIMENT)


def _evaluate_runs(client) -> list[dict]:
    """This module's multiplt_evaluate runs (by their conf's experiment label)."""
    runs = client.request("GET", "/api/v2/dags/multiplt_evaluate/dagRuns?limit=1000")["dag_runs"]
    return [r for r in runs if (r.get("conf") or {}).get("experiment") == EXPERIMENT]


def _training_out(embedded_airflow, tiny_model) -> str:
    from multiplt_pipelines.plans import training_plan

    data_uri = f"file://{embedded_airflow.data_dir}/runs"
    (entry,) = training_plan({"base_model": tiny_model, "languages": [LANG],
                              "experiment": EXPERIMENT, "recipe": "r", "dataset": "d"}, data_uri)
    return entry["out"]


def test_finetune_run_trains_and_evaluates_every_checkpoint(finetuned):
    client, run_id, _, _, _ = finetuned
    mapped = {}
    for ti in client.task_instances("multiplt_finetune", run_id):
        assert ti["state"] == "success", ti
        mapped.setdefault(ti["task_id"], []).append(ti["map_index"])
    assert mapped["plan"] == mapped["checkpoints"] == [-1]
    assert mapped["train"] == [0]                                   # one language
    assert sorted(mapped["evaluate_checkpoints"]) == [0, 1]         # base + 1 epoch


def test_training_manifest_has_a_tagged_checkpoint_per_epoch(finetuned, embedded_airflow, tiny_model):
    from multiplt import storage
    from multiplt.storage import manifest

    out = _training_out(embedded_airflow, tiny_model)
    rows = manifest.read(out)
    assert [r["epoch"] for r in rows] == [1]  # the Param's epochs, not the recipe's 2
    assert [r["tag"] for r in rows] == [f"{LANG}-{EXPERIMENT}-epoch1"]
    for row in rows:
        assert (row["lang"], row["experiment"], row["base"]) == (LANG, EXPERIMENT, tiny_model)
        assert row["uri"] == storage.join(out, "checkpoints", row["tag"])
        assert storage.exists(storage.join(row["uri"], "config.json")), row["uri"]
    assert rows[0]["step"] > 0


def test_each_evaluate_run_was_given_its_checkpoint_explicitly(finetuned, embedded_airflow,
                                                                tiny_model):
    from multiplt.storage import manifest
    from multiplt_pipelines.plans import trigger_run_id

    client, run_id, conf, problems, _ = finetuned
    out = _training_out(embedded_airflow, tiny_model)
    rows = manifest.read(out)
    expected = [{"model": tiny_model, "revision": None, "epoch": 0, "checkpoint_uri": None}]
    expected += [{"model": out, "revision": r["tag"], "epoch": r["epoch"], "checkpoint_uri": r["uri"]}
                 for r in rows]

    runs = {r["dag_run_id"]: r for r in _evaluate_runs(client)}
    assert len(runs) == len(expected), sorted(runs)
    for want in expected:
        evaluate_id = trigger_run_id(run_id, want)
        assert evaluate_id in runs, (evaluate_id, sorted(runs))
        run = client.run("multiplt_evaluate", evaluate_id)  # the run itself, through REST
        assert run["state"] == "success", run
        got = run["conf"]
        assert {k: got.get(k) for k in want} == want, got
        assert (got["languages"], got["experiment"]) == ([LANG], EXPERIMENT)
        # The evaluation settings of the finetune run pass through unchanged.
        for key in ("backend", "replay_source", "problems", "n", "shards", "max_new_tokens"):
            assert got[key] == conf[key], key


def test_results_store_has_a_row_per_epoch_with_the_checkpoint_identity(finetuned, embedded_airflow,
                                                                         tiny_model):
    from multiplt.results import read_store
    from multiplt.storage import manifest

    _, _, _, problems, store = finetuned
    out = _training_out(embedded_airflow, tiny_model)
    tags = {r["epoch"]: r["tag"] for r in manifest.read(out)}
    table = read_store(store)
    rows = sorted((r for r in table.to_dicts() if r["experiment"] == EXPERIMENT and r["k"] == 1),
                  key=lambda r: r["epoch"])
    assert [(r["epoch"], r["model"], r["revision"]) for r in rows] == [
        (0, tiny_model, None), (1, out, tags[1])]
    for row in rows:
        assert (row["lang"], row["backend"], row["n"]) == (LANG, "replay", 2)
        assert (row["estimate"], row["num_problems"]) == (0.5, len(problems))
        assert f"-{LANG}-" in row["run_uri"]
    assert len({r["run_uri"] for r in rows}) == 2  # a run folder per checkpoint


def test_checkpoints_asset_event_carries_the_training_output(finetuned, embedded_airflow, tiny_model):
    """`announce_checkpoints` emits the multiplt_checkpoints event that multiplt_publish reads."""
    client, run_id, conf, _, _ = finetuned
    assets = client.request("GET", "/api/v2/assets?name_pattern=multiplt_checkpoints")["assets"]
    (asset,) = [a for a in assets if a["name"] == "multiplt_checkpoints"]
    events = client.request("GET", f"/api/v2/assets/events?asset_id={asset['id']}&limit=100")["asset_events"]
    ours = [e for e in events if e["source_run_id"] == run_id]
    assert len(ours) == 1 and ours[0]["source_task_id"] == "announce_checkpoints"
    extra = ours[0]["extra"]
    assert extra["outputs"] == [{"lang": LANG, "out": _training_out(embedded_airflow, tiny_model),
                                 "dataset_uri": conf["dataset"].replace("{lang}", LANG)}]
    assert (extra["base_model"], extra["experiment"]) == (tiny_model, EXPERIMENT)
