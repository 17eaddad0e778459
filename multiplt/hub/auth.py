"""The Hub token: where it comes from, and keeping it out of every log line.

The token is `HF_TOKEN` (or the older `HUGGING_FACE_HUB_TOKEN`) from the environment. Inside
Airflow the stage runtime sets `HF_TOKEN` from the connection `huggingface_default` (password =
token) when the worker's environment has none, as private environment of the command (never in
argv, rendered fields or XCom). The token is passed to huggingface_hub explicitly and a logging
filter replaces it with *** in every record of the `multiplt` and `huggingface_hub` loggers.
"""

from __future__ import annotations

import logging
import os

from multiplt.errors import MultipltError

TOKEN_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
CONNECTION_ID = "huggingface_default"
MASK = "***"


def resolve_token(required: bool = True) -> str | None:
    for name in TOKEN_ENV:
        value = os.environ.get(name, "").strip()
        if value:
            install_redaction(value)
            return value
    if required:
        raise MultipltError(
            "no Hugging Face token: set HF_TOKEN (in Airflow: the connection "
            f"{CONNECTION_ID!r}, password = the token) to a token with write access")
    return None


def redact(text: str, token: str | None) -> str:
    return text.replace(token, MASK) if token and text else text


class _RedactToken(logging.Filter):
    def __init__(self, token: str):
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = redact(message, self.token), ()
        return True


def install_redaction(token: str) -> None:
    """Mask `token` in the records of the root, multiplt and huggingface_hub loggers and in
    everything their handlers write (idempotent)."""
    for name in ("", "multiplt", "huggingface_hub"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactToken) and f.token == token for f in logger.filters):
            logger.addFilter(_RedactToken(token))
        for handler in logger.handlers:
            if not any(isinstance(f, _RedactToken) and f.token == token for f in handler.filters):
                handler.addFilter(_RedactToken(token))
