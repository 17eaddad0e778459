"""The embedded deployment: four components on a random loopback port run a DAG to success."""

from __future__ import annotations

import configparser
import json

import pytest

from tests.support.airflow import pool, task_log, wait_for_run

pytestmark = pytest.mark.e2e


def test_components_share_port_secrets_and_login(embedded_airflow):
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(embedded_airflow.config_path)
    port = embedded_airflow.port
    assert cfg["api"]["port"] == str(port)
    assert cfg["core"]["execution_api_server_url"] == f"http://127.0.0.1:{port}/execution/"
    secrets = json.loads((embedded_airflow.airflow_home / "secrets.json").read_text())
    assert cfg["api_auth"]["jwt_secret"] == secrets["JWT_SECRET"]
    # a real login: the simple auth manager is not all-admins and rejects a wrong password
    assert cfg["core"]["simple_auth_manager_all_admins"] == "False"
    from multiplt_airflow.rest import AirflowAPIError, AirflowClient

    with pytest.raises(AirflowAPIError) as err:
        AirflowClient(embedded_airflow.base_url, "multiplt", "wrong-password").token()
    assert err.value.status in (401, 403)
    assert pool(embedded_airflow.client, "gpu")["slots"] == 1


def test_runs_a_dag_to_success_through_rest_api(embedded_airflow):
    client = embedded_airflow.client
    run_id = client.trigger("multiplt_smoke")
    state = wait_for_run(client, "multiplt_smoke", run_id, timeout=300)
    tis = {ti["task_id"]: ti for ti in client.task_instances("multiplt_smoke", run_id)}
    assert state == "success", {k: v["state"] for k, v in tis.items()}
    states = sorted((ti["task_id"], ti["map_index"], ti["state"])
                    for ti in client.task_instances("multiplt_smoke", run_id))
    assert states == [("argv_lists", -1, "success"), ("execution_api_url", -1, "success"),
                      ("mapped", 0, "success"), ("mapped", 1, "success"), ("version", -1, "success")]
    # the task process reached the execution API on the deployment's (non-default) port
    xcom = client.request("GET", f"/api/v2/dags/multiplt_smoke/dagRuns/{run_id}/taskInstances/"
                                 "execution_api_url/xcomEntries/return_value")
    assert xcom["value"] == f"http://127.0.0.1:{embedded_airflow.port}/execution/"
    # the real `multiplt --version` output streamed into the task log
    log = task_log(client, "multiplt_smoke", run_id, "version", tis["version"]["try_number"])
    assert "multiplt 0." in log


def test_a_second_start_on_the_same_home_updates_pool_and_variables(tmp_path):
    """README: ./scripts/main.sh is safe to rerun. A rerun starts a deployment on the home of
    the first one, whose database already holds the `gpu` pool and the job's Variables: the
    start must update them (Airflow 3's PATCH of a pool wants the whole pool, include_deferred
    too), not fail with the API's 409 or 422."""
    from multiplt_airflow.embedded import EmbeddedAirflow

    env = {"HF_HUB_OFFLINE": "1", "DO_NOT_TRACK": "1"}
    first = EmbeddedAirflow(tmp_path / "home", data_dir=tmp_path / "data", env=env)
    first.start(timeout=300)
    try:
        first.client.set_variable("multiplt_rerun", '{"n": 1}', "first")
        assert pool(first.client, "gpu")["slots"] == 1
    finally:
        first.stop()
    again = EmbeddedAirflow(tmp_path / "home", data_dir=tmp_path / "data", env=env, gpu_slots=2)
    again.start(timeout=300)  # ensure_pool on the existing pool
    try:
        client = again.client
        gpu = pool(client, "gpu")
        assert (gpu["slots"], gpu["include_deferred"]) == (2, False)
        assert gpu["description"] == "GPU stages (generate, train)"
        client.set_variable("multiplt_rerun", '{"n": 2}', "second")
        variable = client.request("GET", "/api/v2/variables/multiplt_rerun")
        assert (variable["value"], variable["description"]) == ('{"n": 2}', "second")
        # a pool that does not exist yet is still created
        client.ensure_pool("fresh", 3, "made on the second start")
        assert pool(client, "fresh")["slots"] == 3
    finally:
        again.stop()
        assert not again.leftover_pids()
