# syntax=docker/dockerfile:1
# The scheduler side for docker/compose.yaml: Airflow 3 (api-server, scheduler, dag-processor,
# triggerer) with this repo's dags/ and plugins/, the `airflow` and `storage` extras, and the
# PostgreSQL driver (`postgres` extra). Stage tasks themselves run in the worker and sandbox images.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AIRFLOW_HOME=/opt/airflow

RUN python -m venv /opt/multiplt
ENV PATH=/opt/multiplt/bin:$PATH

WORKDIR /src
COPY requirements.txt requirements.lock pyproject.toml README.md ./
COPY multiplt ./multiplt
RUN pip install -c requirements.lock "/src[airflow,storage,postgres]" \
 && multiplt --version

# The pipelines and the Airflow glue, at the paths compose.yaml configures.
COPY dags /opt/multiplt-repo/dags
COPY plugins /opt/multiplt-repo/plugins

# logs/ and auth/ become named volumes in compose; they inherit this ownership when created
RUN useradd --create-home --uid 50000 airflow \
 && mkdir -p /opt/airflow/logs /opt/airflow/auth \
 && chown -R airflow /opt/airflow
USER airflow
WORKDIR /opt/airflow
