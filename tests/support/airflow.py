"""Airflow for tests.

On import (before any test imports ``airflow``) this module points in-process Airflow at a
throw-away AIRFLOW_HOME rendered from the repo's ``airflow.cfg`` (so no test touches
``~/airflow`` or the user's ``.airflow/``), and puts ``dags/`` and ``plugins/`` on ``sys.path`` so
tests import ``multiplt_pipelines`` and ``multiplt_airflow`` as DAG files do. ``load_dag(name)``
executes one DAG file afresh and returns its ``dag``.

Fixtures:
- ``airflow_db`` (module): that in-process home with its SQLite database as freshly migrated
  (migrated once per session, restored for each module), for ``dag.test()``.
- ``embedded_airflow`` (session): one real deployment for the whole session: api-server,
  scheduler, dag-processor and triggerer on a free 127.0.0.1 port, in a temp AIRFLOW_HOME,
  with this repo's ``dags/`` and ``plugins/`` plus ``tests/fixtures/airflow_dags`` (bundle
  ``tests``). It yields the ``EmbeddedAirflow`` handle: ``.base_url``, ``.username``,
  ``.password``, ``.airflow_home``, ``.port`` and ``.client`` (REST API v2:
  ``trigger(dag_id, conf)``, ``task_instances``, ...; the tests' own calls of it, below:
  ``wait_for_run(client, dag_id, run_id)``, ``task_log``, ``pool``, ``runs_since``).
  Its components and every stage they start talk to the session's test Hub (``session_hub``:
  HF_ENDPOINT, HF_TOKEN, online).
  Teardown stops every process it started and checks none is left.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
PLUGINS = REPO / "plugins"
TEST_DAGS = REPO / "tests" / "fixtures" / "airflow_dags"
for _path in (str(DAGS), str(PLUGINS)):  # as the dag-processor sees them
    if _path not in sys.path:
        sys.path.insert(0, _path)

from multiplt_airflow import embedded  # noqa: E402  (needs plugins/ on sys.path)


def _in_process_home() -> Path:
    """A private AIRFLOW_HOME for Airflow imported by the tests themselves (dag.test)."""
    home = Path(tempfile.mkdtemp(prefix="multiplt-test-airflow-"))
    atexit.register(shutil.rmtree, home, True)
    data = home / "data"
    (data / "airflow").mkdir(parents=True)
    embedded.render_config(home, 8080, data, extra_dag_folders={"tests": str(TEST_DAGS)})
    os.environ["AIRFLOW_HOME"] = str(home)
    os.environ["AIRFLOW_CONFIG"] = str(home / "airflow.cfg")
    return home


def load_file(path: Path, name: str):
    """A fresh execution of the Python file `path` as a module called `name`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_dag(name: str, folder: Path = DAGS):
    """The `dag` of `folder/name.py`, from a fresh execution of the file (so environment and
    config set by the test apply), as the dag-processor would load it."""
    return load_file(folder / f"{name}.py", f"{name}_under_test").dag


def load_launcher():
    """scripts/embedded_airflow.py (the main job's launcher) as a module; it puts plugins/ on
    sys.path."""
    return load_file(REPO / "scripts" / "embedded_airflow.py", "embedded_airflow_script")


def wait_for_run(client, dag_id: str, run_id: str, timeout: float = 600) -> str:
    """Poll a run through `client` (multiplt_airflow.rest.AirflowClient) until it succeeds or
    fails; return its final state."""
    import time

    from multiplt_airflow.rest import TERMINAL_RUN_STATES

    deadline = time.monotonic() + timeout
    while True:
        state = client.run(dag_id, run_id)["state"]
        if state in TERMINAL_RUN_STATES:
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} of {dag_id} still {state} after {timeout:.0f}s")
        time.sleep(2)


def task_log(client, dag_id: str, run_id: str, task_id: str, try_number: int = 1,
             map_index: int = -1) -> str:
    """A task try's whole log as text (client.task_log_content's lines joined)."""
    content = client.task_log_content(dag_id, run_id, task_id, try_number, map_index)
    if isinstance(content, list):
        return "\n".join(c.get("event", "") if isinstance(c, dict) else str(c) for c in content)
    return str(content)


def pool(client, name: str) -> dict:
    """The Airflow pool `name` as the REST API gives it."""
    import urllib.parse

    return client.request("GET", f"/api/v2/pools/{urllib.parse.quote(name)}")


def runs_since(client, dag_id: str, since) -> list[dict]:
    """The DAG's runs queued at or after `since` (or not queued yet), oldest first: the runs the
    main job's wait counts (chain_job's listing)."""
    from multiplt_airflow import chain_job

    return chain_job._since(chain_job._listing(client, dag_id), since)


IN_PROCESS_HOME = _in_process_home()
IN_PROCESS_DB = IN_PROCESS_HOME / "data" / "airflow" / "airflow.db"  # airflow.cfg's sql_alchemy_conn


@pytest.fixture(scope="session")
def _migrated_airflow_db() -> Path:
    """A freshly migrated copy of the in-process database, made once per session."""
    log = IN_PROCESS_HOME / "db-migrate.log"
    with open(log, "wb") as out:
        proc = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], stdout=out,
                              stderr=subprocess.STDOUT, env=dict(os.environ), timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{log.read_text()[-4000:]}")
    template = IN_PROCESS_HOME / "migrated.db"
    shutil.copyfile(IN_PROCESS_DB, template)
    return template


@pytest.fixture(scope="module")
def airflow_db(_migrated_airflow_db) -> Path:
    """The in-process AIRFLOW_HOME, its database as freshly migrated (for ``dag.test()``).

    Every test module starts from the migrated database, as a new deployment would. One database
    for the whole session does not work: Airflow activates an Asset only when no active Asset has
    its name or its URI, so a DAG whose Asset URI comes from a test's data folder finds the name
    taken by an earlier module's run, the Asset stays inactive and its events are dropped.
    """
    _dispose_in_process_engine()
    for leftover in IN_PROCESS_DB.parent.glob(IN_PROCESS_DB.name + "-*"):  # -journal, -wal, -shm
        leftover.unlink()
    shutil.copyfile(_migrated_airflow_db, IN_PROCESS_DB)
    yield IN_PROCESS_HOME
    _dispose_in_process_engine()


def _dispose_in_process_engine() -> None:
    """Close this process's sessions and pooled connections (sync and async engines) to the
    database file about to be replaced: a connection left open would go on with pages of the
    old file (sqlite: "database disk image is malformed")."""
    if "airflow.settings" in sys.modules:
        from sqlalchemy.orm import close_all_sessions

        from airflow import settings

        close_all_sessions()
        if getattr(settings, "engine", None) is not None:
            settings.engine.dispose()
        if getattr(settings, "async_engine", None) is not None:
            settings.async_engine.sync_engine.dispose()


@pytest.fixture(scope="session")
def embedded_airflow(tmp_path_factory, session_hub):
    from tests.support.hub import hub_environment

    root = tmp_path_factory.mktemp("embedded-airflow")
    deployment = embedded.EmbeddedAirflow(root / "home", data_dir=root / "data",
                                          extra_dag_folders={"tests": str(TEST_DAGS)},
                                          env={**hub_environment(session_hub, root / "hf-home"),
                                               "DO_NOT_TRACK": "1",
                                               # finetune's wait for its evaluations: no 60 s naps
                                               "AIRFLOW__MULTIPLT__TRIGGER_POKE_SECONDS": "5"})
    deployment.start(timeout=float(os.environ.get("MULTIPLT_AIRFLOW_START_TIMEOUT", "300")))
    try:
        yield deployment
    finally:
        deployment.stop()
        left = deployment.leftover_pids()
        assert not left, f"embedded Airflow left processes behind: {left}"
