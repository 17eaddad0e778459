"""A real S3 API on 127.0.0.1: moto's standalone server, one per test session.

`s3_server` (function scope) yields the endpoint URL and points boto3 at it through the
environment (AWS_ENDPOINT_URL, fake credentials, a region; no profile or config files), so
subprocesses started by the test (a `multiplt` command, an Airflow task) reach it too.
`s3_bucket` gives a fresh, empty bucket and yields its `s3://NAME` URI.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"moto server exited early with code {proc.returncode}")
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"moto server did not answer at {url} within {deadline_s}s")


@pytest.fixture(scope="session")
def _moto_endpoint(tmp_path_factory):
    """Start `python -m moto.server` in its own process (no GIL shared with the tests)."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    for _attempt in range(3):
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        with open(log, "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                    stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_until_up(url, proc)
            break
        except RuntimeError:
            proc.kill()
            proc.wait()
    else:
        raise RuntimeError(f"could not start moto server; see {log}")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def s3_server(_moto_endpoint, monkeypatch):
    """The endpoint URL, with boto3's environment pointing at it for this test."""
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", _moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    yield _moto_endpoint


@pytest.fixture
def s3_bucket(s3_server):
    """A fresh empty bucket on the test server; yields `s3://NAME`."""
    import boto3

    name = f"test-{uuid.uuid4().hex[:16]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    yield f"s3://{name}"
