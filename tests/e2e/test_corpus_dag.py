"""multiplt_corpus end to end on the embedded Airflow of the session: the planted fixture corpus
through 2 mapped shard tasks, 2 mapped dedup buckets and the merge, triggered through the REST
API v2. Checked: every task succeeded, the merge's output is exactly the planted expectation
(the same as one process gives), and `announce` emitted the `multiplt_corpus_functions` Asset event
naming the merged functions folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.test_corpus_build import check_planted, planted_corpus
from tests.support.airflow import wait_for_run

pytestmark = pytest.mark.e2e
RUN_TIMEOUT = float(os.environ.get("MULTIPLT_E2E_RUN_TIMEOUT", "900"))


def test_corpus_dag_builds_the_planted_corpus(embedded_airflow, tmp_path):
    client = embedded_airflow.client
    source = planted_corpus(Path(embedded_airflow.data_dir) / "corpus-e2e-input")
    out = Path(embedded_airflow.data_dir) / "corpus-e2e-output"
    client.wait_for_dag("multiplt_corpus")
    run_id = client.trigger("multiplt_corpus", {"source": str(source), "out": str(out), "shards": 2,
                                                "dedup_buckets": 2, "workers": 1})
    state = wait_for_run(client, "multiplt_corpus", run_id, timeout=RUN_TIMEOUT)
    instances = client.task_instances("multiplt_corpus", run_id)
    assert state == "success", [(t["task_id"], t["map_index"], t["state"]) for t in instances]
    mapped = sorted((t["task_id"], t["map_index"]) for t in instances if t["map_index"] >= 0)
    assert mapped == [("build_shard", 0), ("build_shard", 1), ("dedup", 0), ("dedup", 1), ("merge", 0)]
    check_planted(out)
    events = client.request("GET", "/api/v2/assets/events?source_dag_id=multiplt_corpus")
    ours = [e for e in events["asset_events"]
            if e["source_run_id"] == run_id and e["source_task_id"] == "announce"]
    assert ours and ours[0]["extra"]["functions_uri"].rstrip("/").endswith("/functions"), events
