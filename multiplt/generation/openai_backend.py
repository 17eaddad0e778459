"""OpenAI-compatible completions endpoint (a vLLM or TGI server): concurrent requests, retries
with exponential backoff on transient errors only (connection errors, timeouts, HTTP 408, 409,
425, 429, 500, 502, 503, 504),
and the same stop handling as every backend (the server's `stop` plus our own cut).

With a tokenizer (`--tokenizer`, the served model's), a completion ends at its first special
token as with the transformers and vllm backends: every special id of the tokenizer goes in
vLLM's `stop_token_ids` request field (one of the sampling parameters vLLM's completions endpoint
takes beyond OpenAI's). vLLM ends the sequence there and leaves the token out of the text; by
default it only leaves special tokens out of the text and goes on (StarCoder2 past `<file_sep>`
into another file), and our own cut never sees them. A server that refuses the field (HTTP 400
naming it, as api.openai.com refuses unknown fields) gets none: whether the field is sent is
decided once, before the run record is written and the first completion is asked for, by one
short request carrying it (max_tokens 1, logged once when refused), so that the record's
`stop_token_ids_sent` (describe) says what every completion of the run was asked with (resuming
a folder under the other setting mixes two kinds of completions: generate refuses it). A
server that ignores the field goes on as without it.

A refused connection before the server has answered any request of this backend is a wrong URL
or a server that is not running (yet): one error at once, not a minute of retries. It is a
PlatformError (exit 3), so an Airflow task is still retried (a server that was starting). Once
the server has answered, a refused connection (a restart) is retried here as before."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Iterator

from multiplt.errors import MultipltError, PlatformError
from multiplt.generation.base import Backend, Description, Request, Sampling
from multiplt.generation.hf_backend import TokenizerDescription
from multiplt.generation.seeds import sample_seed
from multiplt.generation.stops import cut_at_stop

LOG = logging.getLogger("multiplt.generation")
TRANSIENT = {408, 409, 425, 429, 500, 502, 503, 504}
STOP_IDS_FIELD = "stop_token_ids"  # vLLM's completions endpoint: sequences end at these tokens
PROBE_PROMPT = "0"  # the one short request that asks whether the server takes STOP_IDS_FIELD


@dataclasses.dataclass(frozen=True)
class OpenAIDescription(TokenizerDescription):
    """The run record's fields of this backend: with a tokenizer, also what it was resolved to
    (tokenizer_resolved_commit) and whether its special ids are sent as stop_token_ids (false:
    the server refused the field)."""

    stop_token_ids_sent: bool | None = None


class HTTPRefused(MultipltError):
    """The server answered a non-transient HTTP error (not retried)."""

    def __init__(self, message: str, code: int, detail: str):
        super().__init__(message)
        self.code, self.detail = code, detail


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(self, api_base: str, model: str, concurrency: int = 16, retries: int = 6,
                 timeout: float = 600.0, backoff: float = 1.0, api_key: str | None = None,
                 tokenizer: str | None = None, tokenizer_revision: str | None = None):
        self.url = api_base.rstrip("/") + "/completions"
        self.model = model
        self.concurrency = max(1, concurrency)
        self.retries, self.timeout, self.backoff = retries, timeout, backoff
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY")
        self.answered = False  # set by the first answer of the server, whatever its status
        self.refused: str | None = None  # why nothing answers; the requests still queued stop
        self.tokenizer = tokenizer
        # the served model's special ids (from `tokenizer`), sent as stop_token_ids; None when
        # there is no tokenizer or the server refused the field (_settle_stop_ids)
        self.stop_token_ids: list[int] | None = None
        self.tokenizer_commit: str | None = None  # what `tokenizer` was resolved to
        if tokenizer:
            from multiplt.generation.model_source import resolve_model

            ref = resolve_model(tokenizer, tokenizer_revision, what="tokenizer")
            self.stop_token_ids, self.tokenizer_commit = _special_ids(tokenizer, ref=ref), ref.resolved_commit
        self._settled = False
        self._lock = threading.Lock()

    @classmethod
    def from_options(cls, model=None, api_base=None, concurrency=None, batch_size=16, tokenizer=None,
                     tokenizer_revision=None, **_):
        if not api_base:
            raise MultipltError("the openai backend needs --api-base (e.g. http://host:8000/v1)")
        parsed = urllib.parse.urlsplit(api_base)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise MultipltError(f"--api-base {api_base!r} is not an http(s)://HOST[:PORT]/v1 URL")
        if not model:
            raise MultipltError("the openai backend needs --model (the served model name)")
        if concurrency is not None and concurrency < 1:
            raise MultipltError(f"--concurrency must be at least 1, got {concurrency}")
        return cls(api_base, model, concurrency or batch_size, tokenizer=tokenizer,
                   tokenizer_revision=tokenizer_revision)

    @property
    def api_base(self) -> str:
        return self.url.rsplit("/completions", 1)[0]

    def describe(self) -> Description:
        """What the run record says of this backend; with a tokenizer, whether its ids are sent
        (asking the server first: generate takes this before the first completion)."""
        sent = None
        if self.tokenizer:
            self._settle_stop_ids()
            sent = bool(self.stop_token_ids)
        return OpenAIDescription(model=self.model, api_base=self.api_base, tokenizer=self.tokenizer,
                                 tokenizer_resolved_commit=self.tokenizer_commit,
                                 stop_token_ids_sent=sent)

    def _settle_stop_ids(self) -> None:
        """Decide once, before any completion, whether the requests carry stop_token_ids: one
        short request with the field (max_tokens 1); an HTTP 400 naming it leaves it out of
        every request (a warning). Any other refusal is not about the field (the run's own
        requests meet it again, and fail with it); a server that cannot be reached fails here
        as the first request would."""
        with self._lock:
            if self._settled:
                return
            self._settled = True
            if not self.stop_token_ids:
                return
            try:
                self._post({"model": self.model, "prompt": PROBE_PROMPT, "max_tokens": 1, "n": 1,
                            "temperature": 0.0, STOP_IDS_FIELD: self.stop_token_ids})
            except HTTPRefused as exc:
                if exc.code == 400 and STOP_IDS_FIELD in exc.detail:
                    self.stop_token_ids = None
                    LOG.warning("openai backend: %s refuses %s (%s): asking without it, so "
                                "completions do not end at the tokenizer's special tokens",
                                self.url, STOP_IDS_FIELD, _message(exc.detail))

    def _post(self, body: dict) -> dict:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for attempt in range(self.retries + 1):
            if self.refused:
                raise PlatformError(self.refused)
            try:
                req = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    self.answered = True
                    raw = resp.read()
                try:
                    return json.loads(raw)
                except ValueError:  # not JSON, or not UTF-8 (a proxy's login page, say)
                    raise PlatformError(f"{self.url} answered {resp.status} with a body that is not "
                                        f"JSON: {raw[:200].decode(errors='replace')!r}") from None
            except urllib.error.HTTPError as exc:
                self.answered = True
                detail = exc.read()[:300].decode(errors="replace")
                if exc.code not in TRANSIENT:
                    raise HTTPRefused(f"{self.url} answered {exc.code}: {detail}", exc.code, detail) from None
                error = f"HTTP {exc.code}"
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, ConnectionRefusedError) and not self.answered:
                    self.refused = (f"nothing answers at {self.api_base} (connection refused): "
                                    "is the server running?")
                    raise PlatformError(self.refused) from None
                error = str(reason)
            if attempt == self.retries:
                raise PlatformError(f"{self.url} failed {self.retries + 1} times, last: {error}")
            delay = self.backoff * (2 ** attempt) * (0.5 + random.random())
            LOG.warning("openai backend: %s, retrying in %.1fs", error, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _one(self, req: Request, sampling: Sampling) -> str:
        body = {"model": self.model, "prompt": req.prompt.strip(), "max_tokens": sampling.max_new_tokens,
                "temperature": sampling.temperature, "top_p": sampling.top_p, "n": 1,
                "seed": sample_seed(sampling.seed, req.problem, req.index)}
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if self.stop_token_ids:  # settled before the first request (generate)
            body[STOP_IDS_FIELD] = self.stop_token_ids
        answer = self._post(body)
        try:
            text = answer["choices"][0]["text"]
        except (KeyError, IndexError, TypeError):
            raise PlatformError(f"{self.url} gave no choices[0].text: {str(answer)[:200]}") from None
        if not isinstance(text, str):
            raise PlatformError(f"{self.url} gave a choices[0].text that is not a string: "
                                f"{text!r:.200} in {str(answer)[:200]}")
        return cut_at_stop(text, sampling.stop)

    def generate(self, requests: list[Request], sampling: Sampling) -> Iterator[list[tuple[Request, str]]]:
        self._settle_stop_ids()
        with concurrent.futures.ThreadPoolExecutor(self.concurrency) as pool:
            futures = {pool.submit(self._one, r, sampling): r for r in requests}
            try:
                done: list[tuple[Request, str]] = []
                for fut in concurrent.futures.as_completed(futures):
                    done.append((futures[fut], fut.result()))
                    if len(done) >= self.concurrency:
                        yield done
                        done = []
                if done:
                    yield done
            finally:
                for fut in futures:
                    fut.cancel()


def _message(detail: str) -> str:
    """An error answer's `error.message` (OpenAI's and vLLM's shape), else its start."""
    try:
        return str(json.loads(detail)["error"]["message"])[:200]
    except (ValueError, KeyError, TypeError):
        return detail.strip()[:200]


def _special_ids(tokenizer: str, revision: str | None = None, ref=None) -> list[int]:
    """The special token ids (EOS included: hf_backend.special_ids) of the tokenizer `tokenizer`
    (a name, folder or URI, as --tokenizer takes; a Hub name at `revision`, --tokenizer-revision),
    loaded as the transformers backend loads it; `ref`: where it was resolved to already
    (model_source.resolve_model)."""
    from multiplt.generation.hf_backend import special_ids
    from multiplt.generation.model_source import resolve_model
    from multiplt.models.tokenizer import load_tokenizer

    ref = ref or resolve_model(tokenizer, revision, what="tokenizer")
    try:
        tok = load_tokenizer(ref.path, ref=tokenizer)
    except (OSError, ValueError) as exc:
        raise MultipltError(f"cannot load the tokenizer {tokenizer!r}: {exc}") from None
    return special_ids(tok)
