"""The new-model watcher end to end on an embedded Airflow (issue 16, point 7).

Its own deployment (the session's runs in offline mode), with huggingface_hub pointed at a test
Hub served by this process. The `multiplt_watch` Variable watches author `ns` for `starcoder*`
every 2 s and evaluates new models with the replay backend on 2 Lua problems. Checked: the
first polls are the baseline (no run), a model created on the Hub gives no run while its repo
holds no weights, then (weights uploaded) exactly one `multiplt_watch` run and one
`multiplt_evaluate` run of that model at the uploaded commit (which succeeds), more polls give
none, and a second model gives a second pair of runs.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from multiplt_airflow import embedded
from tests.hub_server import HubServer
from tests.support.airflow import TEST_DAGS, wait_for_run
from tests.support.evaluated_airflow import replay_sources
from tests.support.hub import TOKEN

pytestmark = pytest.mark.e2e
TIMEOUT = float(os.environ.get("MULTIPLT_E2E_RUN_TIMEOUT", "600"))


def wait_until(what: str, check, timeout: float = TIMEOUT, every: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


@pytest.fixture(scope="module")
def watched(tmp_path_factory):
    hub = HubServer(token=TOKEN).start()
    hub.add_model("ns/starcoder-base")  # listed before the watcher starts: the baseline
    root = tmp_path_factory.mktemp("watch")
    replay, problems = replay_sources(f"file://{root}/refsol", ("lua",), 2)
    env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": "0", "DO_NOT_TRACK": "1",
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HOME": str(root / "hf-home"),
           # pick up the unpaused DAG (and so start its watcher) quickly
           "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
           "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5"}
    deployment = embedded.EmbeddedAirflow(root / "home", data_dir=root / "data",
                                          extra_dag_folders={"tests": str(TEST_DAGS)}, env=env)
    deployment.start(timeout=float(os.environ.get("MULTIPLT_AIRFLOW_START_TIMEOUT", "300")))
    try:
        client = deployment.client
        watch = {"authors": ["ns"], "pattern": "starcoder*", "poll_interval": 2,
                 "evaluate_languages": ["lua"], "backend": "replay", "replay_source": replay,
                 "problems": ",".join(problems), "n": 2, "shards": 1, "max_new_tokens": 64}
        client.request("POST", "/api/v2/variables", {"key": "multiplt_watch", "value": json.dumps(watch)})
        for dag_id in ("multiplt_evaluate", "multiplt_watch"):
            client.wait_for_dag(dag_id)
            client.set_paused(dag_id, False)
        yield deployment, hub
    finally:
        deployment.stop()
        hub.stop()
        left = deployment.leftover_pids()
        assert not left, f"embedded Airflow left processes behind: {left}"


def upload_weights(hub, repo_id: str) -> str:
    """config.json and weights committed to the repo's main, as push_to_hub does after creating
    it; the commit."""
    with hub.lock:
        repo = hub.repo("model", repo_id)
        head = repo.commits[repo.branches["main"]]
        files = {name: (b"{}", False) for name in ("config.json", "model.safetensors")}
        commit = repo.commit(head.oid, {**head.files, **files}, "upload")
        repo.branches["main"] = commit.oid
    return commit.oid


def listings(hub) -> int:
    return sum(1 for method, path in hub.requests if method == "GET" and path == "/api/models")


def runs(client, dag_id: str) -> list[dict]:
    return client.request("GET", f"/api/v2/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]


def evaluate_models(client) -> list[str]:
    return sorted(r["conf"]["model"] for r in runs(client, "multiplt_evaluate"))


def test_each_new_model_gives_exactly_one_watch_triggered_evaluation(watched):
    deployment, hub = watched
    client = deployment.client
    # the watcher is running once the Hub sees its listings; two polls: the baseline is stored
    wait_until("the watcher's first two polls", lambda: listings(hub) >= 2, timeout=300)
    assert runs(client, "multiplt_watch") == [] and evaluate_models(client) == []

    hub.add_model("ns/starcoder-new")  # created: its weights come later
    hub.add_model("ns/santacoder-new")  # does not match the pattern
    polled = listings(hub)
    wait_until("three polls", lambda: listings(hub) >= polled + 3, timeout=120)
    assert runs(client, "multiplt_watch") == [] and evaluate_models(client) == []
    commit = upload_weights(hub, "ns/starcoder-new")
    wait_until("an evaluation of ns/starcoder-new", lambda: evaluate_models(client))
    (watch_run,) = runs(client, "multiplt_watch")
    assert watch_run["run_type"] == "asset_triggered"
    (evaluation,) = runs(client, "multiplt_evaluate")
    assert evaluation["conf"]["model"] == "ns/starcoder-new" and evaluation["conf"]["backend"] == "replay"
    assert evaluation["conf"]["revision"] == commit
    state = wait_for_run(client, "multiplt_evaluate", evaluation["dag_run_id"], timeout=TIMEOUT)
    assert state == "success", client.task_instances("multiplt_evaluate", evaluation["dag_run_id"])
    assert wait_for_run(client, "multiplt_watch", watch_run["dag_run_id"], timeout=TIMEOUT) == "success"

    polled = listings(hub)
    wait_until("three more polls", lambda: listings(hub) >= polled + 3, timeout=120)
    assert len(runs(client, "multiplt_watch")) == 1
    assert evaluate_models(client) == ["ns/starcoder-new"]

    hub.add_model("ns/starcoder-newer")
    upload_weights(hub, "ns/starcoder-newer")
    wait_until("a second evaluation", lambda: len(evaluate_models(client)) >= 2)
    assert evaluate_models(client) == ["ns/starcoder-new", "ns/starcoder-newer"]
    assert len(runs(client, "multiplt_watch")) == 2
