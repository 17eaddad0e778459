"""The retry policy for Hub calls: retry only what can succeed later.

Retried: HTTP 408, 429 and 5xx, and network errors (connection refused or reset, timeouts; not
huggingface_hub's OfflineModeIsEnabled, raised when HF_HUB_OFFLINE is set),
with exponential backoff (base * 2^attempt, capped, with jitter; `Retry-After` is honoured for
429). Everything else (401, 403, 404, 409, 412, other 4xx, bad local input) fails at once.
After the last attempt a retryable failure becomes a PlatformError (exit 3: the stage runtime
retries the task later); a non-retryable one a MultipltError (exit 2: fix the input or the
token). Both messages name the operation and the Hub's answer, never the token.

`MULTIPLT_HUB_RETRIES` (attempts, default 5) and `MULTIPLT_HUB_BACKOFF` (base seconds, default
2) tune it.
"""

from __future__ import annotations

import logging
import os
import random
import time

from multiplt.errors import MultipltError, PlatformError

LOG = logging.getLogger("multiplt.hub")
RETRY_STATUS = {408, 429}
MAX_WAIT = 60.0


def status_of(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def is_retryable(exc: BaseException) -> bool:
    if type(exc).__name__ == "OfflineModeIsEnabled":  # HF_HUB_OFFLINE is set: waiting cannot help
        return False
    status = status_of(exc)
    if status is not None:
        return status in RETRY_STATUS or 500 <= status < 600
    try:
        import httpx2

        if isinstance(exc, httpx2.TransportError):
            return True
    except ImportError:  # pragma: no cover - huggingface_hub 2.x always brings httpx2
        pass
    return isinstance(exc, (ConnectionError, TimeoutError))


def _policy() -> tuple[int, float]:
    try:
        attempts = max(1, int(os.environ.get("MULTIPLT_HUB_RETRIES", "5")))
        base = max(0.0, float(os.environ.get("MULTIPLT_HUB_BACKOFF", "2")))
    except ValueError:
        raise MultipltError("MULTIPLT_HUB_RETRIES must be an integer and MULTIPLT_HUB_BACKOFF "
                            "a number of seconds") from None
    return attempts, base


def _wait(exc: BaseException, attempt: int, base: float) -> float:
    response = getattr(exc, "response", None)
    header = getattr(response, "headers", {}).get("Retry-After") if response is not None else None
    if header and header.isdigit():
        return min(float(header), MAX_WAIT)
    return min(base * (2 ** attempt), MAX_WAIT) * (0.5 + random.random() / 2)


def describe(exc: BaseException) -> str:
    status = status_of(exc)
    message = getattr(exc, "server_message", None) or str(exc).splitlines()[0]
    return f"HTTP {status}: {message}" if status else f"{type(exc).__name__}: {message}"


def call(what: str, fn, *args, **kwargs):
    """fn(*args, **kwargs) under the policy; `what` names the operation in logs and errors."""
    from multiplt.hub.auth import redact, resolve_token

    token = resolve_token(required=False)
    attempts, base = _policy()
    for attempt in range(attempts):
        try:
            return fn(*args, **kwargs)
        except MultipltError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified below
            reason = redact(describe(exc), token)
            if not is_retryable(exc):
                if status_of(exc) in (401, 403):
                    reason += " (does the token have write access to this repo?)"
                raise MultipltError(f"{what} failed: {reason}") from None
            if attempt + 1 == attempts:
                raise PlatformError(f"{what} failed after {attempts} attempts: {reason}") from None
            delay = _wait(exc, attempt, base)
            LOG.warning("%s: %s; retrying in %.1fs (attempt %d of %d)", what, reason, delay,
                        attempt + 2, attempts)
            time.sleep(delay)


def passing_cause(exc: BaseException) -> BaseException | None:
    """`exc`, or the first of its causes (a download's "not in the cache" error raised from the
    connection error), that is a failure that can pass (is_retryable); None when none is."""
    chain, seen = exc, set()
    while chain is not None and id(chain) not in seen:
        seen.add(id(chain))
        if is_retryable(chain):
            return chain
        chain = chain.__cause__ or chain.__context__
    return None


def hub_error(what: str, exc: BaseException) -> MultipltError:
    """`what` failed because of `exc`, in one line, classified by the Hub retry policy: a
    failure that can pass (can_pass) is a PlatformError, any other a MultipltError."""
    from multiplt.hub.auth import redact, resolve_token

    reason = redact(describe(exc), resolve_token(required=False))
    if passing_cause(exc) is not None:
        return PlatformError(f"{what}: the Hub did not answer ({reason}); try again later")
    return MultipltError(f"{what}: {reason}")
