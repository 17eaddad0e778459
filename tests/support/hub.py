"""Fixture `test_hub`: a fresh test Hub (tests/hub_server.py) on 127.0.0.1 per test, with
huggingface_hub pointed at it: HF_ENDPOINT, a token, a fresh HF_HOME, offline mode unset.
Fixture `session_hub`: one for the whole session, which the session's embedded Airflow uses
(`on_session_hub` points this process at it too).

huggingface_hub reads HF_ENDPOINT once, when its constants module is first used, so the fixture
also patches the loaded constants and the clients made once with the endpoint of then (and closes
the client's pooled connections, which may point at a previous test's server)."""

from __future__ import annotations

import pathlib

import pytest

from tests.hub_server import HubServer

TOKEN = "hf_multiplt_test_token"


@pytest.fixture
def test_hub(monkeypatch, tmp_path):
    """Yields the running HubServer (`.url`, `.token`, `.repos`); huggingface_hub talks to it."""
    hub = HubServer(token=TOKEN).start()
    point_at(monkeypatch, hub, tmp_path / "hf-home")
    try:
        yield hub
    finally:
        _close_sessions()
        hub.stop()


@pytest.fixture(scope="session")
def session_hub():
    """One test Hub for the whole session: the session's embedded Airflow and every stage it
    starts have HF_ENDPOINT and HF_TOKEN pointing at it (tests/support/airflow.py). A test that
    talks to it from this process too uses `on_session_hub`."""
    hub = HubServer(token=TOKEN).start()
    try:
        yield hub
    finally:
        hub.stop()


@pytest.fixture
def on_session_hub(session_hub, monkeypatch, tmp_path):
    """This process's huggingface_hub pointed at the session's test Hub; yields it."""
    point_at(monkeypatch, session_hub, tmp_path / "hf-home")
    try:
        yield session_hub
    finally:
        _close_sessions()


def hub_environment(hub: HubServer, home) -> dict[str, str]:
    """The environment that points huggingface_hub (in any process) at `hub`, online."""
    return {"HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token, "HF_HOME": str(home),
            "HF_HUB_CACHE": str(pathlib.Path(home) / "hub"), "HF_HUB_OFFLINE": "0",
            "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


def point_at(monkeypatch, hub: HubServer, home) -> None:
    for key, value in hub_environment(hub, home).items():
        monkeypatch.setenv(key, value)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HUGGINGFACE_CO_STAGING"):
        monkeypatch.delenv(var, raising=False)
    _patch_loaded_constants(monkeypatch, hub.url, str(home))


def _patch_loaded_constants(monkeypatch, url: str, home: str) -> None:
    import sys

    constants = sys.modules.get("huggingface_hub.constants")
    if constants is None:
        return  # not loaded yet: it will read the environment set above
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HOME", home)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", home + "/hub")
    monkeypatch.setattr(constants, "HUGGINGFACE_HUB_CACHE", home + "/hub")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    # `datasets` copies the endpoint, the offline switches and its cache folder when it is first
    # imported (perhaps by an earlier test that ran offline): point them at this Hub too
    datasets_config = sys.modules.get("datasets.config")
    if datasets_config is not None:
        for name, value in (("HF_ENDPOINT", url), ("HF_HUB_OFFLINE", False),
                            ("HF_DATASETS_OFFLINE", False),
                            ("HF_DATASETS_CACHE", pathlib.Path(home) / "datasets")):
            if hasattr(datasets_config, name):
                monkeypatch.setattr(datasets_config, name, value)
    # clients made once and kept, with the endpoint of when they were made: huggingface_hub's
    # module-level `api` (huggingface_hub.list_repo_tree and the like) and transformers' shared
    # HfApi (its tokenizer loading lists the chat templates through it); one left pointing at an
    # earlier test's stopped Hub retried each call for ~23 s before giving up
    hf_api = sys.modules.get("huggingface_hub.hf_api")
    if hf_api is not None:
        monkeypatch.setattr(hf_api.api, "endpoint", url)
    transformers_hub = sys.modules.get("transformers.utils.hub")
    if transformers_hub is not None and hasattr(transformers_hub, "_hf_api"):
        monkeypatch.setattr(transformers_hub, "_hf_api", None)
    _close_sessions()


def _close_sessions() -> None:
    try:
        from huggingface_hub.utils import close_session
    except ImportError:
        return
    close_session()


def hub_dataset_rows(repo: str) -> int:
    """Rows of the parquet data files of a dataset repo on the Hub that HF_ENDPOINT names."""
    import polars as pl
    from huggingface_hub import HfApi, hf_hub_download

    files = [f for f in HfApi().list_repo_files(repo, repo_type="dataset") if f.endswith(".parquet")]
    return sum(pl.read_parquet(hf_hub_download(repo, f, repo_type="dataset")).height for f in files)
