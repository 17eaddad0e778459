"""Fixture `test_hub`: a fresh test Hub (tests/hub_server.py) on 127.0.0.1 per test, with
huggingface_hub pointed at it: HF_ENDPOINT, a token, a fresh HF_HOME, offline mode unset.

huggingface_hub reads HF_ENDPOINT once, when its constants module is first used, so the fixture
also patches the loaded constants (and closes the client's pooled connections, which may point
at a previous test's server)."""

from __future__ import annotations

import pathlib

import pytest

from tests.hub_server import HubServer

TOKEN = "hf_multiplt_test_token"


@pytest.fixture
def test_hub(monkeypatch, tmp_path):
    """Yields the running HubServer (`.url`, `.token`, `.repos`); huggingface_hub talks to it."""
    hub = HubServer(token=TOKEN).start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HUGGINGFACE_CO_STAGING"):
        monkeypatch.delenv(var, raising=False)
    _patch_loaded_constants(monkeypatch, hub.url, str(tmp_path / "hf-home"))
    try:
        yield hub
    finally:
        _close_sessions()
        hub.stop()


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
    _close_sessions()


def _close_sessions() -> None:
    try:
        from huggingface_hub.utils import close_session
    except ImportError:
        return
    close_session()
