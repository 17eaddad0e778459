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
  exec .venv/bin/python -m pytest -m "not gpu" --durations=25 "$@"
fi
# The whole suite. Test modules that run DAGs in this process (`dag.test()` on the `airflow_db`
# fixture) share one Airflow database per process, whose Asset registrations one module's DAGs
# leave unusable for another's; so each of them runs in a process of its own, after the rest.
mapfile -t own < <(grep -rl --include='test_*.py' -e 'airflow_db' tests | sort)
ignores=()
for f in "${own[@]}"; do ignores+=(--ignore "$f"); done
status=0
.venv/bin/python -m pytest -m "not gpu" --durations=25 "${ignores[@]}" || status=$?
for f in "${own[@]}"; do
  .venv/bin/python -m pytest -m "not gpu" "$f" || status=$?
done
exit $status
