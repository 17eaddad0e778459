"""Storage credentials in stage tasks: where they come from and how they are kept out of logs.

Credentials (``settings.CREDENTIAL_ENV``) come from the worker's environment when a task runs,
never from the DAG file, so they are not part of the parsed or serialized DAG. Before a stage
runs they are registered with Airflow's secrets masker, and every line a stage writes to the
task log (and any value it returns to XCom) also passes through ``redact`` here, so a command
that prints its environment cannot leak them even where the masker is not installed (``dag.test``).
"""

from __future__ import annotations

import os

from multiplt_airflow.settings import CREDENTIAL_ENV

MASK = "***"
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words


HUB_CONNECTION = "huggingface_default"  # password = the Hugging Face token


def from_environment() -> dict[str, str]:
    """The credentials a stage gets: the worker's environment, and the Hub token from the
    connection ``huggingface_default`` when the environment has no HF_TOKEN."""
    values = {k: os.environ[k] for k in CREDENTIAL_ENV if os.environ.get(k)}
    if "HF_TOKEN" not in values:
        token = hub_token_from_connection()
        if token:
            values["HF_TOKEN"] = token
    return values


def hub_token_from_connection(conn_id: str = HUB_CONNECTION) -> str | None:
    """The connection's password, or None when the connection is not defined (or no Airflow)."""
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception:  # noqa: BLE001 - not defined, or not inside Airflow: no token
        return None
    return (conn.password or "").strip() or None


def register_masks(values: dict[str, str]) -> None:
    from airflow.sdk.log import mask_secret

    for name, value in values.items():
        mask_secret(value, name)


def redact(value, secrets: list[str]):
    """`value` (a string, or a list of strings) with every secret replaced by ***."""
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    if not isinstance(value, str):
        return value
    for secret in secrets:
        value = value.replace(secret, MASK)
    return value


def secret_values(values: dict[str, str]) -> list[str]:
    # longest first, so a secret containing another is masked whole
    return sorted({v for v in values.values() if len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


class RedactingLogger:
    """Wraps a task logger: formats each message, redacts secrets, then logs it."""

    def __init__(self, logger, secrets: list[str]):
        self._logger = logger
        self._secrets = secrets

    def _emit(self, level: str, msg, *args, **kwargs):
        text = str(msg) % args if args else str(msg)
        getattr(self._logger, level)("%s", redact(text, self._secrets), **kwargs)

    def debug(self, msg, *args, **kwargs):
        self._emit("debug", msg, *args, **kwargs)

    def info(self, msg, *args, **kwargs):
        self._emit("info", msg, *args, **kwargs)

    def warning(self, msg, *args, **kwargs):
        self._emit("warning", msg, *args, **kwargs)

    def error(self, msg, *args, **kwargs):
        self._emit("error", msg, *args, **kwargs)

    def exception(self, msg, *args, **kwargs):
        self._emit("exception", msg, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._logger, name)
