"""An S3 endpoint that stalls fails a call in bounded time: botocore's defaults waited 60 s for
each connection and each read, on each of 6 attempts (its `max_attempts` counts retries), so a
stalled store held a command for 6 minutes per call, and AWS_MAX_ATTEMPTS was ignored. The
timeouts are now 10 s to connect and 60 s per read, set by MULTIPLT_S3_CONNECT_TIMEOUT and
MULTIPLT_S3_READ_TIMEOUT, and AWS_MAX_ATTEMPTS sets the attempts (docs/storage.md, Timeouts).

A test here that hangs (pytest's timeout) is the bug: no assertion on how long a call took."""

from __future__ import annotations

import pytest

from multiplt import storage
from multiplt.errors import MultipltError, PlatformError
from tests.support.stalled_s3 import use_endpoint


@pytest.mark.timeout(60)
@pytest.mark.parametrize("attempts", [1, 2])
def test_an_endpoint_that_never_answers_fails_after_the_read_timeout(silent_endpoint, monkeypatch,
                                                                     attempts):
    use_endpoint(monkeypatch, silent_endpoint.url, attempts, MULTIPLT_S3_READ_TIMEOUT="0.3")
    with pytest.raises(PlatformError, match="the S3 endpoint did not answer in time to read "
                                            "s3://bucket/x.json") as failed:
        storage.read_bytes("s3://bucket/x.json")
    assert "MULTIPLT_S3_READ_TIMEOUT" in str(failed.value)
    assert len(silent_endpoint.accepted) == attempts  # AWS_MAX_ATTEMPTS: the attempts in all


@pytest.mark.timeout(60)
def test_a_write_to_an_endpoint_that_never_answers_fails_too(silent_endpoint, monkeypatch):
    use_endpoint(monkeypatch, silent_endpoint.url, MULTIPLT_S3_READ_TIMEOUT="0.3")
    with pytest.raises(PlatformError, match="did not answer in time to write s3://bucket/x.json"):
        storage.write_bytes("s3://bucket/x.json", b"{}")


@pytest.mark.timeout(60)
def test_an_endpoint_that_takes_no_connection_fails_after_the_connect_timeout(full_endpoint,
                                                                              monkeypatch):
    use_endpoint(monkeypatch, full_endpoint, MULTIPLT_S3_CONNECT_TIMEOUT="0.3")
    with pytest.raises(PlatformError, match="the S3 endpoint did not answer in time to read"):
        storage.read_bytes("s3://bucket/x.json")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["MULTIPLT_S3_CONNECT_TIMEOUT", "MULTIPLT_S3_READ_TIMEOUT"])
@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan", "inf"])
def test_a_bad_timeout_setting_is_an_error_naming_it(refused_endpoint, monkeypatch, name, value):
    use_endpoint(monkeypatch, refused_endpoint, **{name: value})
    with pytest.raises(MultipltError) as bad:
        storage.read_bytes("s3://bucket/x.json")
    assert str(bad.value) == f"{name} must be a positive number of seconds, got {value!r}"
    assert not isinstance(bad.value, PlatformError)  # bad input (exit 2), not retried


@pytest.mark.timeout(60)
def test_the_timeouts_keep_a_working_store_working(s3_bucket, monkeypatch):
    """Set small, they still let ordinary calls through (and an empty value is the default)."""
    monkeypatch.setenv("MULTIPLT_S3_CONNECT_TIMEOUT", "5")
    monkeypatch.setenv("MULTIPLT_S3_READ_TIMEOUT", "")
    uri = storage.join(s3_bucket, "x.bin")
    storage.write_bytes(uri, b"x" * (9 << 20))  # above the multipart threshold
    assert storage.read_bytes(uri) == b"x" * (9 << 20)
