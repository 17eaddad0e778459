# syntax=docker/dockerfile:1
# The GPU worker: generation, fine-tuning, benchmark building, storage staging and scoring
# (`multiplt generate|train|benchmark|translate|stage in|stage out|results ...`). Build from the repo root:
#   docker build -f docker/worker.Dockerfile -t multiplt-worker .
#
# CUDA runtime base; torch comes from PyPI as its CUDA build (the lock pins the version, pip
# takes the CUDA wheel and its nvidia-* libraries on Linux x86_64). Python 3.11 matches the lock.
# The CPU worker (scripts/build_images.sh) is this file with CUDA_BASE a local Debian bookworm
# base and pip pointed (PIP_FIND_LINKS / PIP_EXTRA_INDEX_URL) at where the CPU torch wheel lies.
ARG CUDA_BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04
FROM ${CUDA_BASE}

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/cache/huggingface

# The stage steps' user (never root) and the stage volume's mount point, owned by it so that a
# fresh volume is writable (docker_stage.py: SANDBOX_USER, STAGE_ROOT).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates git \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin multiplt \
 && mkdir -p /stage && chown 10001:10001 /stage \
 && python3.11 -m venv /opt/multiplt

# Image metadata before the slow steps, so that it is built once (each build step copies the
# whole file system under some storage drivers, vfs among them).
ENV PATH=/opt/multiplt/bin:$PATH
WORKDIR /work
ENTRYPOINT ["multiplt"]
CMD ["--help"]

# Where pip finds wheels besides PyPI (unset: PyPI only); build arguments, not kept in the image.
ARG PIP_FIND_LINKS PIP_EXTRA_INDEX_URL
# EXTRA_CA_CERTS: PEM certificates pip must trust besides the public ones (a TLS-intercepting
# proxy's CA; scripts/build_images.sh passes this machine's local CAs); empty: none.
ARG EXTRA_CA_CERTS=
COPY requirements.txt requirements.lock pyproject.toml /src/
# The dependencies in a layer of their own that survives code and README edits: installed for a
# placeholder package of this name (replaced by the real one at once below), then the code.
RUN cd /src && mkdir multiplt && echo '__version__ = "0"' > multiplt/__init__.py && touch README.md \
 && if [ -n "$EXTRA_CA_CERTS" ]; then \
      printf '%s\n' "$EXTRA_CA_CERTS" | cat /etc/ssl/certs/ca-certificates.crt - >/tmp/pip-ca.pem \
      && export PIP_CERT=/tmp/pip-ca.pem; fi \
 && pip install -c requirements.lock "/src[gen,train,storage,bench,corpus,translate]" \
 && rm -rf multiplt build README.md /tmp/pip-ca.pem
# Every stage container runs as the `multiplt` user (uid 10001; docker_stage.py: SANDBOX_USER),
# never root. Its home is /cache (HOME comes from /etc/passwd: ~/.cache holds multiplt's copies
# of checkpoints read from S3, torch's and Triton's caches) and HF_HOME (/cache/huggingface) is
# below it, both owned by it, as is the working folder /work. The stage runtime mounts the named
# volume [multiplt] hf_cache_volume at /cache/huggingface: a fresh volume takes this ownership.
# One step, after the dependency layer (which a rebuild reuses) and before the code (so that a
# code change does not repeat it).
RUN mkdir -p /cache/huggingface \
 && usermod --home /cache multiplt \
 && chown -R 10001:10001 /cache /work
COPY README.md /src/
COPY multiplt /src/multiplt
RUN cd /src && if [ -n "$EXTRA_CA_CERTS" ]; then \
      printf '%s\n' "$EXTRA_CA_CERTS" | cat /etc/ssl/certs/ca-certificates.crt - >/tmp/pip-ca.pem \
      && export PIP_CERT=/tmp/pip-ca.pem; fi \
 && pip install --no-deps --force-reinstall -c requirements.lock "/src[gen,train,storage,bench,corpus,translate]" \
 && rm -f /tmp/pip-ca.pem \
 && multiplt --version

# The code version multiplt records in each output's provenance (multiplt.provenance), where the
# package runs from no git checkout: the commit scripts/build_images.sh builds from (`-dirty`
# with uncommitted changes to tracked files; compose passes MULTIPLT_CODE_VERSION from the
# shell); "unknown" when the builder gives none. Last, so that a new commit redoes no other step.
ARG MULTIPLT_CODE_VERSION=unknown
ENV MULTIPLT_CODE_VERSION=${MULTIPLT_CODE_VERSION}
