"""multiplt_evaluate end to end on the reference solutions (replay backend, completions [ok, bad],
so pass@1 is exactly 0.5): through the REST API v2 of the embedded Airflow (results checked in
the store and on the leaderboard's data endpoint), and under dag.test() with s3:// storage."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.support.evaluated_airflow import evaluate_conf, replay_sources
from tests.support.airflow import load_dag, wait_for_run

pytestmark = pytest.mark.e2e



def test_rest_triggered_run_records_exact_pass_at_1(evaluated_airflow):
    from multiplt.results import read_store

    ev = evaluated_airflow
    assert ev.state == "success"
    mapped = {}
    for ti in ev.task_instances:
        mapped.setdefault(ti["task_id"], []).append(ti["map_index"])
    assert sorted(mapped["execute"]) == list(range(2 * len(ev.conf["languages"])))  # lang x shard
    # one instance of each per-language group per language
    langs = len(ev.conf["languages"])
    assert sorted(mapped["generation.generate"]) == sorted(mapped["scoring.record_results"]) == list(
        range(langs))
    assert {ti["task_id"]: ti["state"] for ti in ev.task_instances if ti["map_index"] < 0} == {
        "plan": "success", "shard_commands": "success", "late_shard_commands": "success",
        "execute_late": "skipped", "late_executed": "success", "announce_results": "success",
        "all_recorded": "success", "announce_recovered": "skipped"}

    table = read_store(ev.results_store)
    rows = table.filter(table["model"] == "reference-solutions").to_dicts()
    assert sorted(r["lang"] for r in rows) == sorted(ev.conf["languages"])
    for row in rows:
        assert (row["k"], row["estimate"], row["num_problems"]) == (1, 0.5, len(ev.problems))
        assert (row["n"], row["epoch"], row["experiment"], row["backend"]) == (2, 0, "refsol", "replay")


def test_leaderboard_data_endpoint_serves_the_recorded_run(evaluated_airflow):
    client = evaluated_airflow.airflow.client
    url = f"{evaluated_airflow.airflow.base_url}/leaderboard/api/results"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {client.token()}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        data = json.load(response)
    rows = [r for r in data["rows"] if r["model"] == "reference-solutions" and r["k"] == 1]
    assert sorted(r["lang"] for r in rows) == sorted(evaluated_airflow.conf["languages"])
    assert all(r["estimate"] == 0.5 for r in rows)


def test_leaderboard_rejects_anonymous_requests(evaluated_airflow):
    base = evaluated_airflow.airflow.base_url
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{base}/leaderboard/api/results", timeout=30)
    assert err.value.code == 401

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open(f"{base}/leaderboard/", timeout=30)
    assert err.value.code in (302, 303, 307)
    assert "/auth/login" in err.value.headers["Location"]


def test_leaderboard_rejects_forged_tokens(evaluated_airflow):
    import jwt

    base = evaluated_airflow.airflow.base_url
    forged = jwt.encode({"sub": "multiplt", "role": "ADMIN", "aud": "apache-airflow"},
                        "not-the-deployment-secret-" * 3, algorithm="HS512")
    for headers in ({"Authorization": f"Bearer {forged}"}, {"Cookie": f"_token={forged}"}):
        request = urllib.request.Request(f"{base}/leaderboard/api/results", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(request, timeout=30)
        assert err.value.code == 401


def test_invalid_params_are_rejected_when_triggering(evaluated_airflow):
    from multiplt_airflow.rest import AirflowAPIError

    client = evaluated_airflow.airflow.client
    for conf in ({"model": "m", "languages": ["cobol"]}, {"languages": ["lua"]},
                 {"model": "m", "n": 0}):
        with pytest.raises(AirflowAPIError) as err:
            client.trigger("multiplt_evaluate", conf)
        assert err.value.status == 400, conf


def test_dag_test_on_s3_storage(airflow_db, s3_bucket, monkeypatch):
    from multiplt import storage
    from multiplt.results import read_store

    data_uri = f"{s3_bucket}/runs"
    store = f"{s3_bucket}/results/results.parquet"
    monkeypatch.setenv("AIRFLOW__MULTIPLT__DATA_URI", data_uri)
    monkeypatch.setenv("AIRFLOW__MULTIPLT__RESULTS_STORE", store)
    replay, problems = replay_sources(f"{s3_bucket}/refsol", ("lua",), 2)
    dag = load_dag("multiplt_evaluate")
    assert [a.uri for a in dag.get_task("announce_results").outlets] == [store]
    assert not dag.get_task("scoring.record_results").outlets  # the event comes from announce_results

    run = dag.test(run_conf=evaluate_conf(replay, problems, ("lua",), shards=2))
    assert run.state == "success"
    assert run.get_task_instance("announce_results").state == "success"

    runs = [u for u in storage.ls(f"{data_uri}/evaluate/") if u.endswith("/")]
    assert len(runs) == 1 and "-lua-reference_solutions-main-0.2" in runs[0]
    assert storage.exists(storage.join(runs[0], "_scores.csv"))
    table = read_store(store)
    assert table.height == 1
    row = table.row(0, named=True)
    assert (row["lang"], row["k"], row["estimate"], row["num_problems"]) == ("lua", 1, 0.5, 2)
    assert row["run_uri"].startswith("s3://")


def test_rest_triggered_run_records_the_languages_that_got_through(evaluated_airflow, tmp_path):
    """The scheduler follows each language on its own: r, without completions to replay, fails
    its generate; lua is executed, scored, recorded and announced (r named as failed); the run
    fails on `all_recorded`, which names r."""
    from multiplt.results import read_store
    from multiplt_airflow import chain_job

    ev = evaluated_airflow
    client = ev.airflow.client
    replay, problems = replay_sources(f"file://{tmp_path}", ("lua", "r"), 2)
    (tmp_path / "replay" / "r").rename(tmp_path / "replay" / "r-gone")
    conf = {**evaluate_conf(replay, problems, ("lua", "r")), "model": "reference-solutions-partial"}
    run_id = client.trigger("multiplt_evaluate", conf)
    assert wait_for_run(client, "multiplt_evaluate", run_id, timeout=600) == "failed"

    states = {(ti["task_id"], ti["map_index"]): ti["state"]
              for ti in client.task_instances("multiplt_evaluate", run_id)}
    assert [states[("generation.generate", i)] for i in (0, 1)] == ["success", "failed"]
    assert {i for (t, i), s in states.items() if t == "execute" and s == "success"} == {0, 1}
    assert [states[("scoring.record_results", i)] for i in (0, 1)] == ["success", "upstream_failed"]
    assert (states[("announce_results", -1)], states[("all_recorded", -1)]) == ("success", "failed")
    table = read_store(ev.results_store)
    assert table.filter(table["model"] == conf["model"])["lang"].to_list() == ["lua"]
    [event] = [e for e in chain_job.events_of(client, "multiplt_evaluate", run_id)
               if e.get("name") == "multiplt_results"]
    assert [r["lang"] for r in event["extra"]["runs"]] == ["lua"]
    assert [(f["lang"], f["reason"]) for f in event["extra"]["failed"]] == [("r", "generate: failed")]
    log = json.dumps(client.task_log_content("multiplt_evaluate", run_id, "all_recorded", 1))
    assert "1 of 2 evaluations were not recorded: r reference-solutions-partial@main" in log
