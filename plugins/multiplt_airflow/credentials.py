"""Credentials in stage tasks: where they come from, which stage gets which, and how they are
kept out of logs.

Credentials (``settings.CREDENTIAL_ENV``) come from the worker's environment when a task runs,
never from the DAG file, so they are not part of the parsed or serialized DAG. A stage gets only
those its command line can use (``needed``, the one rule of both runtimes). Before a stage runs
every credential of the worker is registered with Airflow's secrets masker, and every line a
stage writes to the task log (and any value it returns to XCom) also passes through ``redact``
here, so a command that prints its environment cannot leak them even where the masker is not
installed (``dag.test``).
"""

from __future__ import annotations

import os
import re
from typing import Mapping, Sequence

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


# The credentials of settings.CREDENTIAL_ENV by what they open.
STORAGE = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")  # s3:// URIs
HUB = ("HF_TOKEN",)  # the Hugging Face Hub
TEACHER = ("OPENAI_API_KEY",)  # an OpenAI-compatible server (--backend openai)
# Older names of a credential that commands still read (huggingface_hub, multiplt.hub.auth): a
# local stage inherits one from the worker only where it gets the credential itself.
ALIASES = {"HUGGING_FACE_HUB_TOKEN": "HF_TOKEN"}
# Generation backends that load no model from the Hub (openai: the server's model name; replay:
# a label); any other (transformers, vllm, one added later) may.
NO_HUB_BACKENDS = ("openai", "replay")
# The --stage values of testgen and translate that sample from the model (the others validate,
# collect or summarize what was sampled).
SAMPLING_STAGES = {"testgen": ("all", "generate"), "translate": ("all", "sample")}
_JSON_FILE = re.compile(r"\.jsonl?(\.gz)?$")  # a benchmark file, not a Hub dataset name


def needed(argv: Sequence[str]) -> frozenset[str]:
    """The credentials (names of ``CREDENTIAL_ENV``) that ``multiplt <argv...>`` can use; a stage
    gets only these. Where a command may need one (a model that may be a Hub id), it gets it.

    - storage (``STORAGE``): a command line naming an ``s3://`` URI (``--opt=URI`` and lists
      too); and, whatever it names, the commands that follow URIs recorded in their inputs:
      those that load a model (a training output's manifest, its checkpoints and base), ``train``,
      ``results record`` (a run's benchmark file and checkpoint) and ``publish``;
    - the Hub token (``HUB``): ``generate`` and ``evaluate``, and ``testgen``/``translate`` at a
      stage that samples (``SAMPLING_STAGES``), unless every ``--backend`` is openai or replay
      and there is no ``--tokenizer``; ``train``; ``publish`` (not ``publish dataset
      --dry-run``); ``benchmark``/``evaluate`` with a ``--source`` that is a Hub dataset name;
      ``corpus build --source hf://...``;
    - the teacher server's key (``TEACHER``): those sampling commands with ``--backend openai``.

    Nothing else: ``execute``, ``score``, ``results show``, ``corpus dedup|merge``, ``model``,
    ``stage in|out`` (storage at most; ``stage run``: nothing) never get the Hub token or the
    key. Options are matched as argparse does (``--opt V``, ``--opt=V``, a prefix of the name).
    """
    args = [str(a) for a in argv]
    while args and args[0].startswith("-"):  # multiplt's own -v/--verbose (they take no value)
        args = args[1:]
    if not args:
        return frozenset()
    command, sub = args[0], (args[1] if len(args) > 1 else "")
    names = set(STORAGE) if any("s3://" in a.lower() for a in args) else set()
    if command == "stage":
        return frozenset() if _stage_step(args[1:]) == "run" else frozenset(names)
    samples = command in ("generate", "evaluate") or (
        command in SAMPLING_STAGES
        and any(s in SAMPLING_STAGES[command] for s in _values(args, "--stage") or ["all"]))
    if samples:
        names |= set(STORAGE)
        backends = _values(args, "--backend") or ["transformers"]
        if any(b not in NO_HUB_BACKENDS for b in backends) or _values(args, "--tokenizer"):
            names |= set(HUB)
        if "openai" in backends:
            names |= set(TEACHER)
    if command in ("benchmark", "evaluate") and any(
            s not in _builtin_benchmarks() and "://" not in s and not _JSON_FILE.search(s)
            for s in _values(args, "--source")):
        names |= set(HUB)
    if command == "corpus" and any(s.lower().startswith("hf://") for s in _values(args, "--source")):
        names |= set(HUB)
    if command in ("train", "publish") or (command, sub) == ("results", "record"):
        names |= set(STORAGE)
    if command == "train" or (command == "publish" and not (sub == "dataset"
                                                            and _values(args, "--dry-run"))):
        names |= set(HUB)
    return frozenset(names)


def _values(args: list[str], flag: str) -> list[str]:
    """Every value given to the option `flag`: `flag V`, `flag=V`, or a prefix of `flag` (which
    argparse takes for the option when no other option starts so), up to a `--`."""
    values = []
    for i, arg in enumerate(args):
        if arg == "--":
            break
        name, eq, value = arg.partition("=")
        if len(name) > 2 and name.startswith("--") and flag.startswith(name):
            if eq:
                values.append(value)
            elif i + 1 < len(args):
                values.append(args[i + 1])
    return values


def _stage_step(args: list[str]) -> str | None:
    """The step of `stage [--root R] STEP [--root R] -- ARGV`."""
    value_next = False
    for arg in args:
        if arg == "--":
            break
        if value_next:  # the value of --root
            value_next = False
        elif arg.startswith("-"):
            value_next = "=" not in arg
        else:
            return arg
    return None


def _builtin_benchmarks() -> set[str]:
    from multiplt.benchmarks.sources import BUILTIN

    return set(BUILTIN)


def for_command(argv: Sequence[str], values: Mapping[str, str] | None = None) -> dict[str, str]:
    """The credentials `values` (default: ``from_environment()``) that ``multiplt <argv...>`` gets:
    those of them it can use (``needed``)."""
    values = from_environment() if values is None else values
    allowed = needed(argv)
    return {k: v for k, v in values.items() if k in allowed}


def inherited_environment(environ: Mapping[str, str], argv: Sequence[str]) -> dict[str, str]:
    """`environ` (the worker's) less every credential ``multiplt <argv...>`` may not use, and
    less those of ``CREDENTIAL_ENV`` it may (``for_command`` gives them, empty ones left out):
    what a local stage's subprocess inherits. A command that may not use the Hub token also gets
    HF_HUB_DISABLE_IMPLICIT_TOKEN=1, so huggingface_hub does not send a token saved on the worker
    by `huggingface-cli login` (HF_HOME/token) in its place."""
    allowed = needed(argv)
    env = {k: v for k, v in environ.items()
           if k not in CREDENTIAL_ENV and (k not in ALIASES or ALIASES[k] in allowed)}
    if "HF_TOKEN" not in allowed:
        env["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"
    return env


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
