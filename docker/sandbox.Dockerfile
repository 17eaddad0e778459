# syntax=docker/dockerfile:1
# The sandbox: every language runtime plus this package with only its `exec` extra (standard
# library and a progress bar). Untrusted programs run here (`multiplt stage run -- multiplt execute ...`).
# Build from the repo root:
#   docker build -f docker/sandbox.Dockerfile -t multiplt-sandbox .
# Without an image registry, scripts/build_images.sh builds it FROM a local Debian bookworm base
# (SANDBOX_BASE; it must have python3 and python3-venv) and, where Julia's download is
# unreachable, WITH_JULIA=0 (an image without Julia; the default build always has it).
#
# Isolation: the stage runtime starts this image with networking off (network_mode none) and no
# credentials; inputs are staged in and outputs out by separate networked steps in the worker
# image over a volume (see docs/docker.md). Inside, the executor adds bubblewrap namespaces where
# the container allows them (user namespaces need a seccomp profile that permits them).
ARG SANDBOX_BASE=python:3.11-slim-bookworm
FROM ${SANDBOX_BASE}

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The language runtimes (Debian's packages, as in scripts/setup.sh): Racket with rackunit,
# R (Rscript), OCaml, Lua 5.4 with luaunit; bubblewrap and util-linux (prlimit) for the sandbox;
# gcc and libc6-dev build the warm sandbox's init (multiplt/execution/init.c) below; liblua5.4-dev
# (lua.h) the glue of the Lua fork server (multiplt/languages/lua.py).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      racket r-base-core ocaml-nox lua5.4 lua-unit bubblewrap util-linux procps ca-certificates curl \
      gcc libc6-dev liblua5.4-dev \
 && rm -rf /var/lib/apt/lists/*

# Image metadata before the slow steps, so that it is built once (each build step copies the
# whole file system under some storage drivers, vfs among them).
# XDG_CACHE_HOME: the compiled init is built into the image, whichever user runs it.
ENV PATH=/opt/multiplt/bin:$PATH \
    XDG_CACHE_HOME=/opt/multiplt-cache
WORKDIR /work
ENTRYPOINT ["multiplt"]
CMD ["--help"]

# Julia is not packaged by Debian: the official tarball, pinned by version and checksum
# (https://julialang-s3.julialang.org/bin/checksums/julia-1.10.8.sha256); WITH_JULIA=0 leaves it
# out. Then the stage containers' user (never root) and the stage volume's mount point, owned
# by it so that a fresh volume is writable (docker_stage.py: SANDBOX_USER, STAGE_ROOT).
ARG JULIA_VERSION=1.10.8 JULIA_SHA256=0410175aeec3df63173c15187f2083f179d40596d36fd3a57819cc5f522ae735 WITH_JULIA=1
RUN if [ "$WITH_JULIA" = 1 ]; then \
      curl -fsSL -o /tmp/julia.tar.gz \
        "https://julialang-s3.julialang.org/bin/linux/x64/${JULIA_VERSION%.*}/julia-${JULIA_VERSION}-linux-x86_64.tar.gz" \
      && echo "${JULIA_SHA256}  /tmp/julia.tar.gz" | sha256sum --strict --check - \
      && mkdir -p /opt/julia \
      && tar -xzf /tmp/julia.tar.gz -C /opt/julia --strip-components 1 \
      && rm /tmp/julia.tar.gz \
      && ln -s /opt/julia/bin/julia /usr/local/bin/julia \
      && julia --version; \
    else echo "WITH_JULIA=$WITH_JULIA: this image has no Julia"; fi \
 && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin multiplt \
 && mkdir -p /stage && chown 10001:10001 /stage \
 && python3 -m venv /opt/multiplt

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
 && pip install -c requirements.lock "/src[exec]" \
 && rm -rf multiplt build README.md /tmp/pip-ca.pem
COPY README.md /src/
COPY multiplt /src/multiplt
RUN cd /src && if [ -n "$EXTRA_CA_CERTS" ]; then \
      printf '%s\n' "$EXTRA_CA_CERTS" | cat /etc/ssl/certs/ca-certificates.crt - >/tmp/pip-ca.pem \
      && export PIP_CERT=/tmp/pip-ca.pem; fi \
 && pip install --no-deps --force-reinstall -c requirements.lock "/src[exec]" \
 && rm -f /tmp/pip-ca.pem \
 && multiplt --version \
 && python -m multiplt.execution.native \
 && chmod -R a+rX /opt/multiplt-cache

# The code version multiplt records in each output's provenance (multiplt.provenance), where the
# package runs from no git checkout: the commit scripts/build_images.sh builds from (`-dirty`
# with uncommitted changes to tracked files; compose passes MULTIPLT_CODE_VERSION from the
# shell); "unknown" when the builder gives none. Last, so that a new commit redoes no other step.
ARG MULTIPLT_CODE_VERSION=unknown
ENV MULTIPLT_CODE_VERSION=${MULTIPLT_CODE_VERSION}
