#!/usr/bin/env bash
# The one list of everything this platform needs on a fresh Debian or Ubuntu machine, and the one
# way to install it. Safe to rerun: it installs only what is missing.
#
#   scripts/setup.sh          runtime: apt packages, .venv with the locked requirements + package
#   scripts/setup.sh --test   the same plus the pinned test-only packages
#
# Run as root it installs the apt packages; otherwise it prints exactly what to install and stops.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# Every external program the code calls comes from one of these (tests/unit/test_setup_list.py
# checks it). Julia is not packaged by Debian: the sandbox image in docker/ installs it.
APT_PACKAGES=(
  python3 python3-venv python3-dev    # the platform itself (Python 3.11)
  racket                              # racket (rackunit is in racket-common)
  r-base-core                         # Rscript
  ocaml-nox                           # ocaml toplevel
  lua5.4 lua-unit liblua5.4-dev       # lua5.4, luaunit; lua.h for the fork server glue (lua.py)
  bubblewrap                          # bwrap: the sandbox's namespaces
  gcc libc6-dev                       # cc: builds the warm sandbox's init (multiplt/execution/init.c)
  util-linux                          # setpriv, unshare, prlimit
  procps                              # ps, pkill (process checks in tests)
  chromium                            # headless browser for the leaderboard UI test
  chromium-driver                     # chromedriver: selenium drives chromium through it (offline)
  docker.io                           # dockerd, docker: the docker runtime and its test tier (tests/docker)
  debootstrap                         # the local Debian base of scripts/build_images.sh
  git
)

with_test=0
for arg in "$@"; do
  case "$arg" in
    --test) with_test=1 ;;
    *) echo "setup.sh: unknown argument $arg (known: --test)" >&2; exit 2 ;;
  esac
done

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup.sh: installing apt packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup.sh: these Debian packages are missing. Install them, then rerun:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# requirements.lock is resolved for Python 3.11 (Debian bookworm's): another version fails late,
# in the middle of pip's install, so say it here, of the Python a new .venv would get and of
# the Python an existing .venv has
python_version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'; }
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  version=$(python_version "$PYTHON")
  if [ "$version" != "3.11" ]; then
    echo "setup.sh: $PYTHON is Python $version, but requirements.lock is for Python 3.11;" \
         "rerun with PYTHON=/path/to/python3.11" >&2
    exit 1
  fi
  echo "setup.sh: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
venv_version=$(python_version .venv/bin/python)
if [ "$venv_version" != "3.11" ]; then
  echo "setup.sh: .venv has Python $venv_version, but requirements.lock is for Python 3.11;" \
       "remove .venv and rerun with PYTHON=/path/to/python3.11" >&2
  exit 1
fi

# Reinstall only when a requirements file or pyproject.toml changed since the last install. The
# stamp holds what the last install put in .venv: "<runtime hash> <test hash or ->", so going back
# to earlier requirements reinstalls too, and a runtime-only install after a --test one (same
# runtime files) is skipped.
reqs=(-r requirements.txt)
((with_test)) && reqs+=(-r requirements-test.txt)
stamp=.venv/.multiplt-installed
base=$(cat requirements.txt requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
tests=$( ((with_test)) && sha256sum < requirements-test.txt | cut -d' ' -f1 || echo -)
read -r had_base had_tests _ 2>/dev/null < "$stamp" || true
if [ "${had_base:-}" != "$base" ] || { ((with_test)) && [ "${had_tests:-}" != "$tests" ]; }; then
  echo "setup.sh: installing locked Python packages into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  # pip compiles every installed module on one core; compileall does it on all of them
  .venv/bin/python -m pip install -q --no-compile "${reqs[@]}" -c requirements.lock
  .venv/bin/python -m compileall -q -j 0 .venv/lib/python3*/site-packages >/dev/null || true
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  echo "$base $tests" > "$stamp"
fi
echo "setup.sh: ready ($(.venv/bin/multiplt --version))"
