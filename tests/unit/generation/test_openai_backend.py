"""OpenAI-compatible backend against a local fake completions server: concurrency, retries on
transient errors only, a refused first connection failing at once, stop handling."""

import http.server
import json
import socket
import threading
import time
import urllib.request

import pytest

from multiplt import cli
from multiplt.errors import MultipltError, PlatformError
from multiplt.generation import openai_backend
from multiplt.generation.base import Request, Sampling
from multiplt.generation.openai_backend import OpenAIBackend


class FakeServer:
    def __init__(self, failures=0, status=503, reply=None, port=0):
        self.failures, self.status, self.reply = failures, status, reply
        self.bodies, self.active, self.max_active = [], 0, 0
        self.lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.bodies.append(body)
                    fail = server.failures > 0
                    server.failures -= 1
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                threading.Event().wait(0.05)
                with server.lock:
                    server.active -= 1
                if fail:
                    data, code = b'{"error": "busy"}', server.status
                elif server.reply is not None:  # a 200 with this body as it is
                    data, code = server.reply, 200
                else:
                    text = body["prompt"][-1] + " body\n(define (g) 1)"  # stop string included
                    data, code = json.dumps({"choices": [{"text": text}]}).encode(), 200
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    servers = []

    def make(**kw):
        servers.append(FakeServer(**kw))
        return servers[-1]

    yield make
    for s in servers:
        s.stop()


def closed_port() -> int:
    """A port nothing listens on: bound, then closed again."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def attempts(monkeypatch):
    """Counts the backend's requests and its backoff sleeps (without sleeping): `.urlopen`,
    `.sleeps`; `.on_sleep` is called at each sleep."""
    class Attempts:
        urlopen, sleeps, on_sleep = 0, [], None

    seen = Attempts()
    real_urlopen = urllib.request.urlopen

    def urlopen(*args, **kwargs):
        seen.urlopen += 1
        return real_urlopen(*args, **kwargs)

    class BackendTime:
        """The backend module's `time`: its sleeps are counted, not slept. Only the backend's:
        patching `time.sleep` itself would count every other sleeper of the command too (the
        sandbox's start-up polling in translate's preflight, under load)."""

        def __getattr__(self, name):
            return getattr(time, name)

        def sleep(self, seconds):
            seen.sleeps.append(seconds)
            if seen.on_sleep:
                seen.on_sleep()

    monkeypatch.setattr(openai_backend.urllib.request, "urlopen", urlopen)
    monkeypatch.setattr(openai_backend, "time", BackendTime())
    return seen


SAMPLING = Sampling(temperature=0.2, top_p=0.95, max_new_tokens=32, stop=("\n(define",), seed=1)


def test_concurrent_requests_and_stop_cut(server):
    s = server()
    backend = OpenAIBackend(s.url, "served-model", concurrency=4, backoff=0.01)
    reqs = [Request(f"p{i}", f"prompt {i}\n", j) for i in range(4) for j in range(2)]
    got = {(r.problem, r.index): t for group in backend.generate(reqs, SAMPLING) for r, t in group}
    assert len(got) == 8 and got[("p3", 1)] == "3 body"
    assert s.max_active > 1
    body = s.bodies[0]
    assert body["model"] == "served-model" and body["max_tokens"] == 32 and body["stop"] == ["\n(define"]
    assert len({b["seed"] for b in s.bodies}) == 8  # a seed per (problem, sample)


def test_retries_transient_errors(server):
    s = server(failures=2, status=503)
    backend = OpenAIBackend(s.url, "m", concurrency=1, backoff=0.01)
    got = [t for g in backend.generate([Request("p", "x", 0)], SAMPLING) for _, t in g]
    assert got == ["x body"] and len(s.bodies) == 3


def test_does_not_retry_client_errors(server):
    s = server(failures=5, status=400)
    backend = OpenAIBackend(s.url, "m", concurrency=1, backoff=0.01)
    with pytest.raises(MultipltError, match="400"):
        list(backend.generate([Request("p", "x", 0)], SAMPLING))
    assert len(s.bodies) == 1


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_refused_first_connection_fails_at_once_naming_the_url(attempts, concurrency):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    backend = OpenAIBackend(url, "m", concurrency=concurrency)
    reqs = [Request(f"p{i}", "x", 0) for i in range(8)]
    with pytest.raises(PlatformError) as raised:  # exit 3: the environment, an Airflow task retries
        list(backend.generate(reqs, SAMPLING))
    assert str(raised.value) == f"nothing answers at {url} (connection refused): is the server running?"
    assert attempts.sleeps == [] and 1 <= attempts.urlopen <= concurrency  # no retry, no backoff


def test_a_server_that_answered_and_then_refuses_is_retried(server, attempts):
    s = server()
    port = s.httpd.server_address[1]
    backend = OpenAIBackend(s.url, "m", concurrency=1)
    assert [t for g in backend.generate([Request("p", "x", 0)], SAMPLING) for _, t in g] == ["x body"]
    s.stop()  # the server restarts: refused until it listens again, after the first backoff
    attempts.on_sleep = lambda: server(port=port)  # back on the same port
    got = [t for g in backend.generate([Request("q", "y", 0)], SAMPLING) for _, t in g]
    assert got == ["y body"] and len(attempts.sleeps) == 1 and attempts.urlopen == 3


def command_inputs(command: str, tmp_path) -> list[str]:
    """The input options of a small run of `command` (generate, testgen, translate)."""
    import pathlib

    import polars as pl

    from multiplt import storage
    from tests.fixtures import translate as fx

    if command == "generate":
        bench = str(tmp_path / "bench.jsonl")
        storage.write_jsonl(bench, [{"name": "p", "language": "lua", "prompt": "x", "tests": "",
                                     "stop_tokens": []}])
        return ["--benchmark", bench]
    if command == "testgen":
        lines = (pathlib.Path(__file__).parents[2] / "fixtures" / "testgen" / "functions.jsonl").read_text()
        (tmp_path / "in" / "functions").mkdir(parents=True)
        pl.DataFrame([json.loads(line) for line in lines.splitlines()]).write_parquet(
            tmp_path / "in" / "functions" / "part-0.parquet")
        return ["--functions", str(tmp_path / "in")]
    return ["--tests", fx.write(tmp_path / "in")["tests"], "--lang", "lua"]


@pytest.mark.parametrize("command", ["generate", "testgen", "translate"])
def test_a_closed_port_is_one_error_line_at_once(tmp_path, capsys, attempts, command):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    argv = [command, *command_inputs(command, tmp_path), "--out", str(tmp_path / "out"),
            "--backend", "openai", "--model", "m", "--api-base", url, "--n", "2"]
    assert cli.main(argv) == 3
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (f"multiplt {command}: error: nothing answers at {url} (connection refused): "
                       "is the server running?")
    assert not any("error" in line.lower() for line in err[:-1])
    assert attempts.sleeps == [] and attempts.urlopen <= 16
    if command == "generate":  # testgen and translate keep their resumable work/ (prompts)
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("reply,problem", [
    (b"<html>" + b"proxy login " * 40 + b"</html>",
     r"answered 200 with a body that is not JSON: '<html>proxy login .{150,200}'$"),
    (b"\xff\xfe not utf-8", "answered 200 with a body that is not JSON"),
    (b'{"choices": [{"text": null, "finish_reason": "length"}]}',
     "gave a choices\\[0\\].text that is not a string: None in"),
    (b'{"choices": [{"text": 7}]}', "gave a choices\\[0\\].text that is not a string: 7"),
    (b'{"choices": []}', r"gave no choices\[0\].text"),
])
def test_a_malformed_200_reply_is_one_clear_error(server, reply, problem):
    s = server(reply=reply)
    backend = OpenAIBackend(s.url, "m", concurrency=1, backoff=0.01)
    with pytest.raises(PlatformError, match=problem):
        list(backend.generate([Request("p", "x", 0)], SAMPLING))
    assert len(s.bodies) == 1  # not retried: the server answered


@pytest.mark.parametrize("options,problem", [
    ({"api_base": "foo://x/v1"}, "is not an http"),
    ({"api_base": "http:///v1"}, "is not an http"),
    ({"api_base": "http://host:8000/v1", "concurrency": 0}, "--concurrency must be at least 1"),
])
def test_bad_options_are_refused_before_any_request(options, problem):
    with pytest.raises(MultipltError, match=problem):
        OpenAIBackend.from_options(model="m", **options)


def test_bad_batch_size_is_refused_before_anything_is_written(tmp_path):
    from multiplt import storage
    from multiplt.generation.driver import generate

    bench = str(tmp_path / "bench.jsonl")
    storage.write_jsonl(bench, [{"name": "p", "language": "lua", "prompt": "x", "tests": "",
                                 "stop_tokens": []}])
    with pytest.raises(MultipltError, match="--batch-size must be at least 1"):
        generate(bench, str(tmp_path / "out"), backend="replay", replay_source=bench, batch_size=0)
    assert not (tmp_path / "out").exists()
