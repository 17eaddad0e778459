"""S3 endpoints that fail on 127.0.0.1, for the code that must end in bounded time when the store
stalls: `silent_endpoint` accepts connections and never answers (an S3 behind a stopped proxy or
a hung server), `full_endpoint` takes no connection at all (its queue is full: a connect hangs, as
to a host that drops packets), `refused_endpoint` refuses them (a server that is down).

`silent_endpoint` yields the server (its `url`, the connections it `accepted`), the others the
endpoint URL; none changes the environment: `use_endpoint(monkeypatch, url)` points
boto3 at one (fake credentials, no profile or config files; AWS_MAX_ATTEMPTS=1 unless given), so
a test may switch to it midway, after setting up on the moto server (tests/support/s3.py).
"""

from __future__ import annotations

import os
import socket
import threading

import pytest


def use_endpoint(monkeypatch, url: str, attempts: int = 1, **timeouts: str) -> None:
    """Point boto3 (and so the storage API) at `url`: `attempts` per call, and the timeouts given
    as MULTIPLT_S3_CONNECT_TIMEOUT=... / MULTIPLT_S3_READ_TIMEOUT=... (seconds, as text)."""
    for key in list(os.environ):
        if key.startswith("AWS_") or key.startswith("MULTIPLT_S3_"):
            monkeypatch.delenv(key)
    for key, value in {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                       "AWS_MAX_ATTEMPTS": str(attempts), **timeouts}.items():
        monkeypatch.setenv(key, value)


class SilentServer:
    """Accepts every connection and never reads or answers; `accepted` counts them. Closing it
    closes them all (a client still waiting then sees the connection end)."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="silent-s3", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted.append(conn)

    def close(self) -> None:
        self._closed.set()
        self._thread.join()
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent_endpoint():
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def full_endpoint():
    """A listening socket that never accepts, its queue filled by one connection: the next
    connection attempt waits until its connect timeout."""
    server = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = server.getsockname()[1]
    filler = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        filler.close()
        server.close()


@pytest.fixture
def refused_endpoint():
    """A port bound but not listening: every connection is refused at once."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
