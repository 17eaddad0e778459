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

Two servers' ways with fields beyond OpenAI's:
- `special_tokens={"<file_sep>": 2, ...}`: the texts of the special tokens (their ids) that
  recorded completions may hold, answered as vLLM's completions endpoint does with its
  `stop_token_ids`, `skip_special_tokens` (default true) and `include_stop_str_in_output`
  (default false) fields: the text ends before the first special token whose id is in
  `stop_token_ids` (the token's text kept only with include_stop_str_in_output and
  skip_special_tokens false), and special tokens are left out of the text unless
  skip_special_tokens is false;
- `openai_fields_only=True`: as api.openai.com, a 400 naming the first field of a request that
  is not one of OpenAI's completions parameters (`Unrecognized request argument supplied: NAME`).
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


OPENAI_FIELDS = {"model", "prompt", "best_of", "echo", "frequency_penalty", "logit_bias", "logprobs",
                 "max_tokens", "n", "presence_penalty", "seed", "stop", "stream", "stream_options",
                 "suffix", "temperature", "top_p", "user"}


class CompletionsServer:
    def __init__(self, recorded: dict[str, list[str]] | None = None,
                 models: list[str] | tuple[str, ...] = ("teacher",),
                 special_tokens: dict[str, int] | None = None, openai_fields_only: bool = False):
        self.models = list(models)
        self.special_tokens = dict(special_tokens or {})
        self.openai_fields_only = openai_fields_only
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

    def _text(self, completion: str, body: dict) -> str:
        """A recorded completion as vLLM would give it under the request's fields."""
        if not self.special_tokens:
            return completion
        skip = body.get("skip_special_tokens", True)
        stop_ids = set(body.get("stop_token_ids") or ())
        pieces = re.split("(" + "|".join(map(re.escape, self.special_tokens)) + ")", completion)
        text = []
        for i, piece in enumerate(pieces):
            special = i % 2 == 1
            if special and self.special_tokens[piece] in stop_ids:
                if body.get("include_stop_str_in_output") and not skip:
                    text.append(piece)
                break
            if not (special and skip):
                text.append(piece)
        return "".join(text)

    def _answer(self, body: dict) -> tuple[int, dict]:
        unknown = [k for k in body if k not in OPENAI_FIELDS]
        if self.openai_fields_only and unknown:
            return 400, {"error": {"message": f"Unrecognized request argument supplied: {unknown[0]}",
                                   "type": "invalid_request_error", "param": None, "code": None}}
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
        choices = [{"index": i, "text": self._text(completions[(start + i) % len(completions)], body),
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
