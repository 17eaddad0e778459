"""A small OpenAI-compatible completions server on 127.0.0.1 that replays recorded completions.

`CompletionsServer(recorded, models=["teacher"])` serves
- `GET /v1/models`: `{"object": "list", "data": [{"id": ..., "object": "model"}, ...]}`;
- `POST /v1/completions` (`model`, `prompt`, `n`, ...): the recorded completions of that exact
  prompt (compared with surrounding whitespace stripped, as the openai backend sends it), `n` of
  them per request, taken in turn (a prompt's i-th request for one completion gets its i-th
  recording, modulo their number); an unknown model or an unrecorded prompt is a 400/404
  answer that names it.

`.url` is the `http://127.0.0.1:PORT/v1` base, `.requests` every (method, path, body) received.
Fixture `completions_server` yields one with nothing recorded (`.record(prompt, [completions])`).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class CompletionsServer:
    def __init__(self, recorded: dict[str, list[str]] | None = None,
                 models: list[str] | tuple[str, ...] = ("teacher",)):
        self.models = list(models)
        self.recorded: dict[str, list[str]] = {}
        self.served: dict[str, int] = {}
        self.requests: list[tuple[str, str, dict | None]] = []
        self.lock = threading.Lock()
        for prompt, completions in (recorded or {}).items():
            self.record(prompt, completions)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def record(self, prompt: str, completions: list[str]) -> None:
        if not completions:
            raise ValueError("record at least one completion")
        self.recorded.setdefault(prompt.strip(), []).extend(completions)

    def start(self) -> "CompletionsServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _answer(self, body: dict) -> tuple[int, dict]:
        if body.get("model") not in self.models:
            return 404, {"error": {"message": f"model {body.get('model')!r} is not served"}}
        prompt = str(body.get("prompt", "")).strip()
        with self.lock:
            completions = self.recorded.get(prompt)
            if completions is None:
                return 400, {"error": {"message": f"no recorded completion for the prompt "
                                                  f"{prompt[:200]!r}"}}
            n = int(body.get("n") or 1)
            start = self.served.get(prompt, 0)
            self.served[prompt] = start + n
        choices = [{"index": i, "text": completions[(start + i) % len(completions)],
                    "finish_reason": "stop"} for i in range(n)]
        return 200, {"object": "text_completion", "model": body["model"], "choices": choices}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                server.requests.append(("GET", self.path, None))
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [
                        {"id": m, "object": "model", "owned_by": "tests"} for m in server.models]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self._send(400, {"error": {"message": "the body is not JSON"}})
                    return
                server.requests.append(("POST", self.path, body))
                if self.path.rstrip("/") != "/v1/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                self._send(*server._answer(body))

        return Handler


@pytest.fixture
def completions_server():
    server = CompletionsServer().start()
    try:
        yield server
    finally:
        server.stop()
