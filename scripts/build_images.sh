#!/usr/bin/env bash
# Builds the images the docker runtime runs, on a machine whose Docker engine cannot reach an
# image registry (the Debian and PyPI registries must be reachable), and prints their sizes.
#
#   scripts/build_images.sh            local base: multiplt-sandbox:latest, multiplt-worker:cpu
#   scripts/build_images.sh --online   public bases (the Dockerfiles' defaults, pulled first):
#                                      multiplt-sandbox:latest, multiplt-worker:latest (CUDA)
#   scripts/build_images.sh --check    exit 0 when the images this script builds (those of the
#                                      offline build; with --online, the online ones) are built
#                                      and up to date, else 1; builds and pulls nothing
#   scripts/build_images.sh --refresh  rebuild from scratch for OS security updates: a new local
#                                      base (offline) and every image built with --no-cache
#
# Offline, the base is Debian bookworm made here with debootstrap and `docker import`ed as
# multiplt-base:bookworm (made once, kept by tag). The sandbox image gets every language runtime;
# Julia only when its download is reachable (said below; the default build always has it). The
# CPU worker is docker/worker.Dockerfile on that base, pip finding the CPU torch wheel where this
# machine's pip finds it (its find-links and file:// indexes, served on 127.0.0.1 for the build).
#
# Each image is labelled with a digest of everything it is built from (Dockerfile, the files it
# copies, build arguments, base image id): an image whose label matches is not rebuilt, so a
# rerun with nothing changed builds nothing. Online, the bases are pulled first, so a base that
# changed upstream changes the digest. The digest does not cover what apt and pip fetch: the
# base kept by tag and cached layers keep their packages until --refresh. Builds run at low
# priority (nice) on the host network.
#
# Environment (each optional; docs/docker.md):
#   MULTIPLT_BASE_IMAGE        the offline base's tag (multiplt-base:bookworm)
#   MULTIPLT_SANDBOX_IMAGE     the sandbox image's tag (multiplt-sandbox:latest); another name
#                              needs `[multiplt] sandbox_image` (airflow.cfg, or
#                              AIRFLOW__MULTIPLT__SANDBOX_IMAGE) set to match
#   MULTIPLT_CPU_WORKER_IMAGE  the offline CPU worker's tag (multiplt-worker:cpu)
#   MULTIPLT_GPU_WORKER_IMAGE  the online CUDA worker's tag (multiplt-worker:latest); the worker
#                              the stages run in is `[multiplt] worker_image`: set it to match
#   MULTIPLT_BUILD_DIR         build contexts, logs and the offline base's root file system
#                              (/var/tmp/multiplt-build)
#   MULTIPLT_WHEEL_PORT        the 127.0.0.1 port that serves this machine's pip find-links and
#                              file:// indexes to the offline build (38417)
#   DEBIAN_MIRROR              the Debian mirror debootstrap makes the offline base from
#                              (http://deb.debian.org/debian)
#   MULTIPLT_CODE_VERSION      the code version the images record in every output's provenance
#                              (multiplt.provenance), given to each build as the build argument
#                              of that name (this checkout's commit, with -dirty when tracked
#                              files have uncommitted changes; "unknown" outside a git checkout)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# Which images (offline or online) and what to do with them (build, check) are separate
# choices: --online --check checks the online images, in either order.
online=0 check=0 refresh=0
for arg in "$@"; do
  case "$arg" in
    --online) online=1 ;;
    --check) check=1 ;;
    --refresh) refresh=1 ;;
    *) echo "build_images.sh: unknown argument $arg (known: --online, --check, --refresh)" >&2; exit 2 ;;
  esac
done
if ((check && refresh)); then
  echo "build_images.sh: --check builds nothing; --refresh rebuilds everything: use one of them" >&2
  exit 2
fi

BASE_IMAGE=${MULTIPLT_BASE_IMAGE:-multiplt-base:bookworm}
SANDBOX_IMAGE=${MULTIPLT_SANDBOX_IMAGE:-multiplt-sandbox:latest}
CPU_WORKER_IMAGE=${MULTIPLT_CPU_WORKER_IMAGE:-multiplt-worker:cpu}
GPU_WORKER_IMAGE=${MULTIPLT_GPU_WORKER_IMAGE:-multiplt-worker:latest}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
JULIA_PROBE=https://julialang-s3.julialang.org/bin/checksums/julia-1.10.8.sha256
WHEEL_PORT=${MULTIPLT_WHEEL_PORT:-38417}
LABEL=org.multiplt.inputs
WORK=${MULTIPLT_BUILD_DIR:-/var/tmp/multiplt-build}
export DOCKER_BUILDKIT=0  # the classic builder: BuildKit's Dockerfile frontend is an image too

say() { echo "build_images.sh: $*"; }
die() { echo "build_images.sh: $*" >&2; exit 1; }

docker info >/dev/null 2>&1 || die "no Docker engine answers (start dockerd; see docs/docker.md)"
mkdir -p "$WORK"

# The code version of this checkout (multiplt.provenance's, for a run from it): its commit,
# with -dirty when tracked files have uncommitted changes; "unknown" where git says nothing.
checkout_version() {
  local commit
  commit=$(git -C "$ROOT" rev-parse --verify HEAD 2>/dev/null) || { echo unknown; return; }
  if [ -n "$(GIT_OPTIONAL_LOCKS=0 git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    commit+=-dirty
  fi
  echo "$commit"
}
# a build argument of every image, so part of its inputs digest: a new commit rebuilds the
# images' last step (the Dockerfiles declare it last)
if [ -n "${MULTIPLT_CODE_VERSION:-}" ]; then CODE_VERSION=$MULTIPLT_CODE_VERSION; else CODE_VERSION=$(checkout_version); fi

image_id() { docker image inspect -f '{{.Id}}' "$1" 2>/dev/null || true; }
image_label() { docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$1" 2>/dev/null || true; }
# The default of a Dockerfile's base argument: dockerfile_arg docker/worker.Dockerfile CUDA_BASE
dockerfile_arg() { sed -n "s/^ARG $2=//p" "$1" | head -1; }

# A public base (online): pulled, so that a base changed upstream changes the inputs digest;
# where the registry is unreachable, the copy this engine has. With --check: the copy it has,
# nothing pulled. Prints the image id; empty: the base is neither pullable nor here.
public_base() {
  local ref=$1
  if ((!check)); then
    if docker pull -q "$ref" >/dev/null 2>"$WORK/pull.log"; then
      say "pulled $ref" >&2
    elif [ -n "$(image_id "$ref")" ]; then
      say "cannot pull $ref ($(tail -1 "$WORK/pull.log")): using the copy this engine has" >&2
    else
      die "cannot pull $ref: $(tail -1 "$WORK/pull.log")"
    fi
  fi
  image_id "$ref"
}

# The local base: a minimal bookworm with python3 (3.11) and venv, imported once under its tag.
local_base() {
  if [ -n "$(image_id "$BASE_IMAGE")" ] && ((refresh)); then
    # untagged only: the images built on it keep their layers until they are rebuilt
    docker image rm "$BASE_IMAGE" >/dev/null || die "cannot remove $BASE_IMAGE for --refresh"
    say "removed $BASE_IMAGE (--refresh): made again with today's packages"
  fi
  if [ -n "$(image_id "$BASE_IMAGE")" ]; then
    say "$BASE_IMAGE exists, kept"
    return
  fi
  [ "$(id -u)" -eq 0 ] || die "making $BASE_IMAGE needs root (debootstrap)"
  command -v debootstrap >/dev/null || die "debootstrap is missing (scripts/setup.sh installs it)"
  local rootfs="$WORK/base-rootfs" start=$SECONDS
  rm -rf "$rootfs"
  say "making $BASE_IMAGE with debootstrap (bookworm, $DEBIAN_MIRROR)"
  nice -n 10 debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || die "debootstrap failed; see $WORK/debootstrap.log"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" --numeric-owner -c . | docker import \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    -c 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  say "$BASE_IMAGE made in $((SECONDS - start)) s"
}

# The build context: only what the Dockerfile's own .dockerignore lets through (the classic
# builder reads only a .dockerignore at the context root), in a folder of its own.
make_context() {
  local dockerfile=$1 ctx=$2
  local -a paths=()
  while read -r line; do
    [[ "$line" == '!'* ]] && paths+=("${line#!}")
  done <"$dockerfile.dockerignore"
  rm -rf "$ctx" && mkdir -p "$ctx"
  tar -c --exclude=__pycache__ --exclude='*.pyc' "${paths[@]}" | tar -x -C "$ctx"
  cp "$dockerfile" "$ctx/Dockerfile"
}

# A digest of what an image is built from: context files (contents, names, modes), build args,
# the base image's id.
inputs_digest() {
  local ctx=$1; shift
  { (cd "$ctx" && tar -c --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner .) | sha256sum
    printf '%s\n' "$@"; } | sha256sum | cut -c1-32
}

# build TAG DOCKERFILE BASE_ID BUILD_ARG...
build() {
  local tag=$1 dockerfile=$2 base_id=$3; shift 3
  local ctx="$WORK/context-${tag//[:\/]/-}" args=() digest
  make_context "$dockerfile" "$ctx"
  for a in "$@"; do args+=(--build-arg "$a"); done
  digest=$(inputs_digest "$ctx" "base=$base_id" "$@")
  if [ -n "$base_id" ] && [ "$(image_label "$tag")" = "$digest" ] && ((!refresh)); then
    say "$tag is up to date (inputs $digest), not rebuilt"
    return
  fi
  if ((check)); then
    say "$tag is missing or out of date"
    stale=1
    return
  fi
  [ -z "${WANTS_WHEELS:-}" ] || start_wheel_server
  local start=$SECONDS old_id
  old_id=$(image_id "$tag")
  say "building $tag from $dockerfile (build args: $(printf '%s ' "${@%%=*}"))"
  if ((refresh)); then args+=(--no-cache); fi
  nice -n 10 docker build --force-rm --network host --label "$LABEL=$digest" -t "$tag" "${args[@]}" \
    -f "$ctx/Dockerfile" "$ctx" >"$WORK/build-${tag//[:\/]/-}.log" 2>&1 \
    || { tail -40 "$WORK/build-${tag//[:\/]/-}.log" >&2; die "building $tag failed; see $WORK/build-${tag//[:\/]/-}.log"; }
  say "built $tag in $((SECONDS - start)) s"
  built+=("$tag")
  remove_replaced "$tag" "$old_id"
}

# The image a rebuild replaced keeps its layers on disk, untagged; with the vfs storage driver
# each is a full copy, so a few rebuilds fill a disk. Remove it when it was ours (our label), no
# tag names it any more and nothing uses it (else the engine refuses, and its reason is said).
remove_replaced() {
  local tag=$1 old_id=$2
  [ -n "$old_id" ] && [ "$old_id" != "$(image_id "$tag")" ] || return 0
  [ -n "$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$old_id" 2>/dev/null)" ] || return 0
  [ -z "$(docker image inspect -f '{{join .RepoTags " "}}' "$old_id" 2>/dev/null)" ] || return 0
  local why
  if why=$(docker image rm "$old_id" 2>&1); then
    say "removed the image $tag replaced (${old_id#sha256:})"
  else
    say "kept the image $tag replaced (${old_id#sha256:}): $(tail -1 <<<"$why")"
  fi
}

# This machine's pip wheel sources (find-links folders, file:// indexes), served on 127.0.0.1
# while a build runs (host network) so that pip there finds the wheels PyPI lacks, e.g. the CPU
# build of torch. The URLs are fixed (port, link names), so they enter the inputs digest as is.
PIP_ARGS=()
WHEEL_DIR="$WORK/wheel-server"
wheel_sources() {
  local links=() indexes=() n=0 value seen=" "
  rm -rf "$WHEEL_DIR" && mkdir -p "$WHEEL_DIR"
  for value in $(python3 -m pip config get global.find-links 2>/dev/null || true) ${PIP_FIND_LINKS:-}; do
    [ -d "$value" ] && [[ "$seen" != *" $value "* ]] || continue
    seen+="$value "
    ln -sfn "$value" "$WHEEL_DIR/links$n"
    links+=("http://127.0.0.1:$WHEEL_PORT/links$n/")
    n=$((n + 1))
  done
  for value in $(python3 -m pip config get global.extra-index-url 2>/dev/null || true) ${PIP_EXTRA_INDEX_URL:-}; do
    value=${value#file://}
    # only local indexes: a remote one is left out (the build uses PyPI)
    [ -d "$value" ] && [[ "$seen" != *" $value "* ]] || continue
    seen+="$value "
    ln -sfn "$(dirname "$value")" "$WHEEL_DIR/index$n"
    indexes+=("http://127.0.0.1:$WHEEL_PORT/index$n/$(basename "$value")/")
    n=$((n + 1))
  done
  if ((${#links[@]})); then PIP_ARGS+=("PIP_FIND_LINKS=${links[*]}"); fi
  if ((${#indexes[@]})); then PIP_ARGS+=("PIP_EXTRA_INDEX_URL=${indexes[*]}"); fi
}

server_pid=
start_wheel_server() {
  [ -z "$server_pid" ] && ((${#PIP_ARGS[@]})) || return 0
  python3 -m http.server --bind 127.0.0.1 --directory "$WHEEL_DIR" "$WHEEL_PORT" \
    >"$WORK/wheel-server.log" 2>&1 &
  server_pid=$!
  trap 'kill "$server_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$WHEEL_PORT/" && break; sleep 0.1; done
  kill -0 "$server_pid" 2>/dev/null || die "cannot serve wheels on 127.0.0.1:$WHEEL_PORT (MULTIPLT_WHEEL_PORT); see $WORK/wheel-server.log"
  say "pip in the build also looks in: ${PIP_ARGS[*]}"
}

built=()
stale=0
total_start=$SECONDS
if ((online)); then
  sandbox_base=$(public_base "$(dockerfile_arg docker/sandbox.Dockerfile SANDBOX_BASE)")
  worker_base=$(public_base "$(dockerfile_arg docker/worker.Dockerfile CUDA_BASE)")
  build "$SANDBOX_IMAGE" docker/sandbox.Dockerfile "$sandbox_base" "MULTIPLT_CODE_VERSION=$CODE_VERSION"
  build "$GPU_WORKER_IMAGE" docker/worker.Dockerfile "$worker_base" "MULTIPLT_CODE_VERSION=$CODE_VERSION"
  images=("$SANDBOX_IMAGE" "$GPU_WORKER_IMAGE")
else
  if ((check)); then
    [ -n "$(image_id "$BASE_IMAGE")" ] || { say "$BASE_IMAGE is missing"; exit 1; }
  else
    local_base
  fi
  base_id=$(image_id "$BASE_IMAGE")
  julia=1
  if ! curl -fsS -m 15 -o /dev/null "$JULIA_PROBE" 2>/dev/null; then
    julia=0
    say "Julia's download ($JULIA_PROBE) is unreachable: the sandbox image is built WITHOUT Julia (every other runtime is in it)"
  fi
  # this machine's local CAs (e.g. a TLS-intercepting proxy's), for pip in the builds
  ca_args=()
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    ca_args=("EXTRA_CA_CERTS=$(cat /usr/local/share/ca-certificates/*.crt)")
  fi
  build "$SANDBOX_IMAGE" docker/sandbox.Dockerfile "$base_id" "SANDBOX_BASE=$BASE_IMAGE" "WITH_JULIA=$julia" "${ca_args[@]}" \
    "MULTIPLT_CODE_VERSION=$CODE_VERSION"
  wheel_sources
  WANTS_WHEELS=1 build "$CPU_WORKER_IMAGE" docker/worker.Dockerfile "$base_id" "CUDA_BASE=$BASE_IMAGE" "${PIP_ARGS[@]}" "${ca_args[@]}" \
    "MULTIPLT_CODE_VERSION=$CODE_VERSION"
  images=("$SANDBOX_IMAGE" "$CPU_WORKER_IMAGE")
fi

if ((check)); then
  exit "$stale"
fi
if ((${#built[@]})); then  # the versions these builds replaced (untagged, ours only)
  docker image prune -f --filter "label=$LABEL" >/dev/null
fi
say "done in $((SECONDS - total_start)) s; built: ${built[*]:-nothing}"
docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' | grep -E "^($(IFS='|'; echo "${images[*]}" | sed 's/\./\\./g'))\b" \
  | while IFS=$'\t' read -r name size; do say "size $name $size"; done
