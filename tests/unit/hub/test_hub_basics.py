"""Repo ids, the retry policy, token redaction and bundle comparison (no Hub needed)."""

from __future__ import annotations

import logging

import pytest

from multiplt.errors import MultipltError, PlatformError
from multiplt.hub import auth, retry
from multiplt.hub.bundle import Bundle, file_hashes
from multiplt.hub.repo_id import parse_repo_id


@pytest.mark.parametrize("good", ["nuprl/MultiPL-T", "a/b", "my-org/model_1.5b", "A1/x.y-z"])
def test_repo_ids_accepted(good):
    assert "/".join(parse_repo_id(good)) == good


@pytest.mark.parametrize("bad", ["", "name", "a/b/c", "https://huggingface.co/a/b", "a//b", "-a/b",
                                 "a/b-", "a/b--c", "a/b..c", "a/b c", "a/" + "x" * 97, "datasets/"])
def test_repo_ids_rejected(bad):
    with pytest.raises(MultipltError, match="OWNER/NAME"):
        parse_repo_id(bad)


class _Response:
    def __init__(self, status, headers=None):
        self.status_code, self.headers = status, headers or {}


class _HTTPError(Exception):
    def __init__(self, status, headers=None):
        super().__init__(f"HTTP {status}")
        self.response = _Response(status, headers)


@pytest.mark.parametrize("status, retried", [(408, True), (429, True), (500, True), (502, True),
                                             (503, True), (400, False), (401, False), (403, False),
                                             (404, False), (409, False), (412, False)])
def test_only_408_429_and_5xx_are_retryable(status, retried):
    assert retry.is_retryable(_HTTPError(status)) is retried


def test_network_errors_are_retryable():
    import httpx2

    assert retry.is_retryable(httpx2.ConnectError("refused"))
    assert retry.is_retryable(ConnectionResetError())
    assert not retry.is_retryable(ValueError("bad yaml"))


def test_offline_mode_fails_at_once(monkeypatch):
    """HF_HUB_OFFLINE raises a ConnectionError subclass; retrying cannot help, so one attempt."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    from multiplt.errors import MultipltError

    calls = []
    monkeypatch.setenv("MULTIPLT_HUB_BACKOFF", "0")

    def offline():
        calls.append(1)
        raise OfflineModeIsEnabled("Cannot reach https://huggingface.co: offline mode is enabled.")

    with pytest.raises(MultipltError, match="op failed: OfflineModeIsEnabled"):
        retry.call("op", offline)
    assert calls == [1]


def test_call_retries_then_succeeds_and_gives_up_as_platform_error(monkeypatch):
    monkeypatch.setenv("MULTIPLT_HUB_BACKOFF", "0")
    monkeypatch.setenv("MULTIPLT_HUB_RETRIES", "3")
    answers = [_HTTPError(503), _HTTPError(429, {"Retry-After": "0"}), "ok"]

    def flaky():
        value = answers.pop(0)
        if isinstance(value, Exception):
            raise value
        return value

    assert retry.call("op", flaky) == "ok"
    calls = []

    def down():
        calls.append(1)
        raise _HTTPError(500)

    with pytest.raises(PlatformError, match="after 3 attempts"):
        retry.call("op", down)
    assert len(calls) == 3
    calls.clear()

    def forbidden():
        calls.append(1)
        raise _HTTPError(403)

    with pytest.raises(MultipltError, match="HTTP 403") as info:
        retry.call("op", forbidden)
    assert not isinstance(info.value, PlatformError) and len(calls) == 1


def test_token_is_redacted_from_log_records(caplog, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret_value_123")
    assert auth.resolve_token() == "hf_secret_value_123"
    with caplog.at_level(logging.INFO, logger="multiplt"):
        logging.getLogger("multiplt").info("token is %s", "hf_secret_value_123")
    assert "hf_secret_value_123" not in caplog.text and "***" in caplog.text


def test_missing_token_is_a_clear_error(monkeypatch):
    for name in auth.TOKEN_ENV:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(MultipltError, match="huggingface_default"):
        auth.resolve_token()


def test_bundle_changes_against_regular_and_lfs_hashes(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.bin"
    a.write_text("hello")
    b.write_bytes(b"\0" * 100)
    sha1_a, _ = file_hashes(str(a))
    _, sha256_b = file_hashes(str(b))
    with Bundle() as bundle:
        bundle.add_file("a.txt", str(a))
        bundle.add_file("data/b.bin", str(b))
        remote = {".gitattributes": "sha1:x", "a.txt": sha1_a, "data/b.bin": sha256_b}
        assert bundle.same_as(remote)
        remote_old = {**remote, "data/old.bin": "sha1:y", "other.md": "sha1:z", "a.txt": "sha1:stale"}
        changed, deleted = bundle.changes(remote_old, deletable=lambda p: p.startswith("data/"))
        assert changed == {"a.txt": str(a)} and deleted == ["data/old.bin"]
        assert bundle.same_as({**remote, "a.txt": "sha1:other"}, ignore={"a.txt"})
