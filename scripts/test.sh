#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh --test) and runs the whole test suite but the `gpu` tests.
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow" tests/unit
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
scripts/setup.sh --test
export MULTIPLT_DATA="${MULTIPLT_DATA:-$ROOT/data}"
# Tests must never reach the network: no Hub, no telemetry.
export HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 DO_NOT_TRACK=1
if [ $# -gt 0 ]; then
  # a marker expression given here (-m EXPR, -mEXPR, --markexpr[=]EXPR) is joined to "not gpu":
  # pytest keeps only the last one; arguments after -- go through as they are
  marks="not gpu" args=()
  while [ $# -gt 0 ]; do
    case "$1" in
      -m|--markexpr)
        if [ $# -lt 2 ]; then echo "scripts/test.sh: $1 needs a marker expression" >&2; exit 2; fi
        marks="not gpu and ($2)"; shift 2 ;;
      --markexpr=*) marks="not gpu and (${1#--markexpr=})"; shift ;;
      -m*) marks="not gpu and (${1#-m})"; shift ;;
      --) args+=("$@"); break ;;
      *) args+=("$1"); shift ;;
    esac
  done
  exec .venv/bin/python -m pytest -m "$marks" --durations=25 "${args[@]}"
fi
# The whole suite as two pytest processes at once: the `e2e` and `docker` tiers (Airflow
# deployments and containers: mostly waiting on schedulers, triggers and engines) beside the
# rest (mostly CPU). Each has its own session fixtures (servers on free ports, its own in-process
# Airflow home); the tiny model cache is built under a file lock. The tiers' output follows the
# rest's, and the exit status is non-zero when either failed.
log=$(mktemp "${TMPDIR:-/tmp}/multiplt-tests-e2e-XXXXXX.log")
.venv/bin/python -m pytest -m "not gpu and (e2e or docker)" -p no:cacheprovider --durations=15 \
  >"$log" 2>&1 &
tiers=$!
trap 'kill "$tiers" 2>/dev/null; exit 130' INT TERM
status=0
.venv/bin/python -m pytest -m "not gpu and not e2e and not docker" --durations=25 || status=$?
wait "$tiers" || status=$?
echo "===== the e2e and docker tiers (run beside the rest) ====="
cat "$log"
rm -f "$log"
exit $status
