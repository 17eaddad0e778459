"""A Hub source's failures, classified by the Hub retry policy (multiplt.hub.retry): one that can
pass (no connection, HTTP 5xx) is exit 3, which the DAG retries; not found and no access are
exit 2 (bad input). Against the test Hub (tests/hub_server.py)."""

from __future__ import annotations

import types

import pytest
from huggingface_hub.utils import close_session

from multiplt import cli
from multiplt.corpus import sources
from multiplt.errors import MultipltError, PlatformError
from tests.unit.corpus.test_input_pin import parquet, push

SOURCE = "hf://datasets/ns/code/data"


@pytest.fixture
def code(test_hub):
    repo = test_hub.create_repo("dataset", "ns/code")
    push(repo, {"data/a.parquet": parquet("fa", 3)}, "a")
    return repo


def build(out, source=SOURCE) -> int:
    return cli.main(["corpus", "build", "--source", source, "--out", str(out), "--no-typecheck"])


def test_a_hub_5xx_is_a_platform_error(test_hub, code, tmp_path, capsys):
    test_hub.fail("GET", r"/api/datasets/ns/code", 503, times=1000)
    with pytest.raises(PlatformError, match=f"--source {SOURCE}: cannot list the Hub dataset ns/code: "
                                            "the Hub did not answer [(]HTTP 503"):
        sources.resolve(SOURCE)
    assert build(tmp_path / "out") == 3
    assert "try again later" in capsys.readouterr().err


def test_no_connection_is_a_platform_error(test_hub, code, tmp_path, monkeypatch):
    from huggingface_hub.utils import _http

    # huggingface_hub retries a refused connection itself, waiting 1 s, 2 s, 4 s, ... between
    # tries: the tries still happen, the waits do not
    monkeypatch.setattr(_http, "time", types.SimpleNamespace(sleep=lambda seconds: None))
    listed = sources.resolve(SOURCE)
    test_hub.stop()  # nothing listens there any more: connection refused
    close_session()  # (not even on a pooled connection)
    with pytest.raises(PlatformError, match="cannot list the Hub dataset ns/code: the Hub did not answer"):
        sources.resolve(SOURCE)
    # a download's error is "not in the local cache", raised from the connection error
    with pytest.raises(PlatformError, match="cannot download data/a.parquet of ns/code at .*the Hub did not answer"):
        list(listed.read("a.parquet"))
    assert build(tmp_path / "out") == 3


def test_a_download_that_fails_with_5xx_is_a_platform_error(test_hub, code, tmp_path, capsys):
    source = sources.resolve(SOURCE)
    # a 5xx huggingface_hub does not retry itself (it waits and retries 500, 502-504 downloads)
    test_hub.fail("GET", r"/resolve/", 507, times=1000)
    test_hub.fail("HEAD", r"/resolve/", 507, times=1000)
    with pytest.raises(PlatformError, match="cannot download data/a.parquet of ns/code at "):
        list(source.read("a.parquet"))
    assert build(tmp_path / "out") == 3


def test_a_missing_or_gated_dataset_is_bad_input(test_hub, code, tmp_path, capsys):
    with pytest.raises(MultipltError, match="cannot list the Hub dataset ns/none") as caught:
        sources.resolve("hf://datasets/ns/none")
    assert not isinstance(caught.value, PlatformError)
    assert build(tmp_path / "out", "hf://datasets/ns/none") == 2
    test_hub.gate("ns/code", granted=False, rtype="dataset")
    source = sources.resolve(SOURCE)  # a gated repo's listing is public; its files are not
    with pytest.raises(MultipltError, match="cannot download data/a.parquet") as caught:
        list(source.read("a.parquet"))
    assert not isinstance(caught.value, PlatformError)
    assert build(tmp_path / "out2") == 2
