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
exec .venv/bin/python -m pytest -m "not gpu" --durations=25 "$@"
