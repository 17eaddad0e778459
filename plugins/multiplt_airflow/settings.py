"""The platform's section of the Airflow configuration: ``[multiplt]`` in ``airflow.cfg``.

Every key can be overridden with ``AIRFLOW__MULTIPLT__<KEY>``. Values are read when a task runs
or a DAG is parsed (no database or network access), with the defaults below when the section is
absent (e.g. a test's own Airflow home).
"""

from __future__ import annotations

import dataclasses
import os
import re

RUNTIMES = ("local", "docker")
DOCKER_GPUS = ("all", "none")
VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")  # what the Docker engine accepts
VOLUME_PREFIX = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")  # + "-<hash>" makes a volume name

# Credentials (storage, the Hub, and the key of an OpenAI-compatible teacher server, which
# `generate --backend openai` sends): each stage gets only those its command line can use
# (credentials.needed), to docker stage containers only as private environment (never to
# sandbox run steps), to local stage subprocesses as their environment; all registered with the
# secrets masker and redacted from the task log; never written into argv, rendered fields or XCom.
CREDENTIAL_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "HF_TOKEN",
                  "OPENAI_API_KEY")
# Non-secret storage settings passed to docker stage containers as plain environment.
STORAGE_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_REGION",
               "AWS_MAX_ATTEMPTS", "MULTIPLT_S3_ADDRESSING_STYLE", "MULTIPLT_S3_CONNECT_TIMEOUT",
               "MULTIPLT_S3_READ_TIMEOUT", "HF_ENDPOINT", "HF_HUB_OFFLINE")


def _default_data() -> str:
    return os.environ.get("MULTIPLT_DATA") or os.path.join(os.getcwd(), "data")


@dataclasses.dataclass(frozen=True)
class MultipltSettings:
    runtime: str = "local"
    worker_image: str = "multiplt-worker:latest"
    sandbox_image: str = "multiplt-sandbox:latest"
    docker_url: str = "unix://var/run/docker.sock"
    # Docker network of the networked stage containers (e.g. the compose network, to reach MinIO);
    # empty: Docker's default bridge. Sandbox steps always run with networking off.
    docker_network: str = ""
    data_uri: str = ""
    results_store: str = ""
    # docker runtime: the named volume that sandbox steps stage files through
    stage_volume_prefix: str = "multiplt-stage"
    # docker runtime: the named volume mounted at the worker image's Hub cache
    # (/cache/huggingface) in ordinary and GPU stages, so a model is downloaded once per Docker
    # host; empty: none (each container downloads again)
    hf_cache_volume: str = "multiplt-hf-cache"
    # cron of multiplt_evaluate's periodic reruns of the `rerun_models` list ("" = none): a
    # schedule Airflow takes for that DAG (load checks it: _schedule_problem)
    evaluate_schedule: str = ""
    # docker runtime: "all" gives GPU stages every GPU of the host (needs the NVIDIA container
    # runtime); "none" runs them without (a CPU worker image, e.g. on a machine without GPUs)
    docker_gpus: str = "all"
    # seconds between checks of a triggered run the triggering task waits for (multiplt_finetune
    # waits for its per-checkpoint multiplt_evaluate runs)
    trigger_poke_seconds: str = "60"


def load() -> MultipltSettings:
    """The ``[multiplt]`` settings from Airflow's configuration (env overrides included)."""
    from airflow.configuration import conf

    data = _default_data()
    defaults = MultipltSettings(data_uri=f"file://{data}/runs",
                                results_store=f"file://{data}/results/results.parquet")
    values = {}
    for field in dataclasses.fields(MultipltSettings):
        values[field.name] = conf.get("multiplt", field.name, fallback=getattr(defaults, field.name))
    settings = MultipltSettings(**values)
    if settings.docker_gpus not in DOCKER_GPUS:
        raise ValueError(f"[multiplt] docker_gpus must be one of {', '.join(DOCKER_GPUS)}, "
                         f"not {settings.docker_gpus!r}")
    try:
        if float(settings.trigger_poke_seconds) <= 0:
            raise ValueError
    except ValueError:
        raise ValueError("[multiplt] trigger_poke_seconds must be a positive number of seconds, "
                         f"not {settings.trigger_poke_seconds!r}") from None
    if settings.hf_cache_volume and not VOLUME_NAME.fullmatch(settings.hf_cache_volume):
        raise ValueError("[multiplt] hf_cache_volume must be a Docker volume name (two or more "
                         f"letters, digits, _ . -, the first a letter or digit) or empty, not "
                         f"{settings.hf_cache_volume!r}")
    if not VOLUME_PREFIX.fullmatch(settings.stage_volume_prefix):
        raise ValueError("[multiplt] stage_volume_prefix must start a Docker volume name (letters, "
                         "digits, _ . -, the first a letter or digit), not "
                         f"{settings.stage_volume_prefix!r}")
    if settings.runtime not in RUNTIMES:
        raise ValueError(f"[multiplt] runtime must be one of {', '.join(RUNTIMES)}, "
                         f"not {settings.runtime!r}")
    schedule_problem = _schedule_problem(settings.evaluate_schedule.strip())
    if schedule_problem:
        raise ValueError("[multiplt] evaluate_schedule must be a cron expression (0 3 * * 1), a "
                         "preset (@hourly, @daily, @weekly, @monthly, @quarterly, @yearly), @once "
                         f"or empty, not {settings.evaluate_schedule!r}: {schedule_problem}")
    return settings


def _schedule_problem(schedule: str) -> str | None:
    """Why multiplt_evaluate's DAG would refuse `schedule` (stripped; "" = no schedule) as its
    `schedule`, or None: Airflow turns a string into a cron timetable (a preset resolved to its
    expression, validated by croniter) unless it is @once or @continuous; @continuous allows one
    active run only, and multiplt_evaluate runs several at once."""
    if schedule in ("", "@once"):
        return None
    if schedule == "@continuous":
        return ("Airflow runs a @continuous DAG with max_active_runs 1 only, and multiplt_evaluate "
                "runs several at once")
    from airflow.sdk import CronTriggerTimetable
    from airflow.sdk.exceptions import AirflowTimetableInvalid

    try:
        CronTriggerTimetable(schedule, timezone="UTC").validate()
    except AirflowTimetableInvalid as exc:  # croniter's reason
        return str(exc)
    return None
