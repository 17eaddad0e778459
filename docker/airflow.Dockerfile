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
# Where pip finds wheels besides PyPI (unset: PyPI only) and PEM certificates it must trust
# besides the public ones (a TLS-intercepting proxy's CA): build arguments, as in
# docker/worker.Dockerfile, not kept in the image.
ARG PIP_FIND_LINKS PIP_EXTRA_INDEX_URL
ARG EXTRA_CA_CERTS=
COPY requirements.txt requirements.lock pyproject.toml ./
# The dependencies in a layer of their own that survives code and README edits (Airflow and its
# ~200 packages take minutes): installed for a placeholder package of this name, replaced by the
# real one at once below, as docker/worker.Dockerfile does.
RUN mkdir multiplt && echo '__version__ = "0"' > multiplt/__init__.py && touch README.md \
 && if [ -n "$EXTRA_CA_CERTS" ]; then \
      printf '%s\n' "$EXTRA_CA_CERTS" | cat /etc/ssl/certs/ca-certificates.crt - >/tmp/pip-ca.pem \
      && export PIP_CERT=/tmp/pip-ca.pem; fi \
 && pip install -c requirements.lock "/src[airflow,storage,postgres]" \
 && rm -rf multiplt build README.md /tmp/pip-ca.pem
COPY README.md ./
COPY multiplt ./multiplt
RUN pip install --no-deps --force-reinstall -c requirements.lock "/src[airflow,storage,postgres]" \
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

# The code version multiplt records in each output's provenance (multiplt.provenance): compose
# passes MULTIPLT_CODE_VERSION from the shell; "unknown" when it gives none. Last, so that a
# new commit redoes no other step.
ARG MULTIPLT_CODE_VERSION=unknown
ENV MULTIPLT_CODE_VERSION=${MULTIPLT_CODE_VERSION}
