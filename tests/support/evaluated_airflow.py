"""Reference-solution evaluations for the DAG and leaderboard tests.

`replay_sources(tmp_dir_or_uri, langs, k)` builds the benchmark of each language, picks the first
k problems that have reference solutions in every one of them, and writes a replay folder per
language (completions [ok, bad], so pass@1 is exactly 0.5). `evaluated_airflow` (session) runs
`multiplt_evaluate` once on the embedded Airflow through the REST API v2 with the replay
backend, and yields what the tests check: the deployment, run id, conf and results store path.
"""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from tests.support.airflow import task_log, wait_for_run

E2E_LANGS = ("lua", "r")
E2E_PROBLEMS = 3


def replay_sources(root: str, langs, k: int) -> tuple[str, list[str]]:
    """(replay_source with `{lang}`, problem names) for `langs`, under the folder URI/path `root`."""
    from multiplt import storage
    from multiplt.benchmarks.build import build_benchmark
    from tests.fixtures import solutions

    common = None
    for lang in langs:
        names = set(solutions.load(lang))
        common = names if common is None else common & names
    picked = sorted(common, key=lambda n: int(n.split("_")[1]))[:k]
    for lang in langs:
        bench = storage.join(root, f"bench-{lang}.jsonl")
        build_benchmark("humaneval", lang, bench, problems=picked)
        written = solutions.write_completion_folder(bench, lang, storage.join(root, "replay", lang),
                                                    names=picked)
        assert written == picked, (lang, written, picked)
    return storage.join(root, "replay", "{lang}"), picked


def evaluate_conf(replay_source: str, problems: list[str], langs, shards: int = 2) -> dict:
    return {"model": "reference-solutions", "revision": None, "languages": list(langs),
            "backend": "replay", "replay_source": replay_source, "problems": ",".join(problems),
            "n": 2, "temperature": 0.2, "max_new_tokens": 128, "shards": shards,
            "experiment": "refsol", "epoch": 0}


@dataclasses.dataclass
class EvaluatedAirflow:
    airflow: object          # the EmbeddedAirflow handle
    run_id: str
    state: str
    conf: dict
    problems: list[str]
    results_store: str       # local path of the results parquet
    task_instances: list


@pytest.fixture(scope="session")
def evaluated_airflow(embedded_airflow, tmp_path_factory) -> EvaluatedAirflow:
    root = tmp_path_factory.mktemp("refsol")
    replay, problems = replay_sources(f"file://{root}", E2E_LANGS, E2E_PROBLEMS)
    conf = evaluate_conf(replay, problems, E2E_LANGS)
    client = embedded_airflow.client
    run_id = client.trigger("multiplt_evaluate", conf)
    state = wait_for_run(client, "multiplt_evaluate", run_id,
                         timeout=float(os.environ.get("MULTIPLT_E2E_RUN_TIMEOUT", "600")))
    tis = client.task_instances("multiplt_evaluate", run_id)
    if state != "success":
        failed = [ti for ti in tis if ti["state"] != "success"]
        logs = "\n".join(
            f"--- {ti['task_id']}[{ti['map_index']}] {ti['state']}\n"
            + task_log(client, "multiplt_evaluate", run_id, ti["task_id"],
                       max(ti["try_number"], 1), ti["map_index"])[-3000:]
            for ti in failed[:3])
        pytest.fail(f"multiplt_evaluate ended {state}; conf {json.dumps(conf)}\n{logs}")
    store = embedded_airflow.data_dir / "results" / "results.parquet"
    return EvaluatedAirflow(embedded_airflow, run_id, state, conf, problems, str(store), tis)
