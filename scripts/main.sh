#!/usr/bin/env bash
# The platform's main job on the embedded default (README command 1):
#   set everything up, check the arguments, build the tiny local model if missing, start the
#   embedded Airflow (api-server, scheduler, dag-processor, triggerer on 127.0.0.1) and run the
#   MultiPL-T chain with the tiny model: multiplt_corpus on the `stdlib` corpus -> multiplt_testgen ->
#   multiplt_translate (every installed target language; none: the chain stops after testgen) ->
#   multiplt_finetune (one epoch) ->
#   multiplt_evaluate (each checkpoint; the base model is evaluated beside the chain on every
#   installed language) -> multiplt_publish (datasets as a --dry-run into a local folder);
#   n=2, 128 new tokens. It prints every stage's funnel, each stage that ended empty with its
#   reason, the pass@k table, the UI address and the login, and keeps Airflow running until Ctrl-C.
#   When the job ends it sets the Airflow Variables it set back to what they were. Ctrl-C (or
#   SIGTERM) before the chain is done marks the job's unfinished runs failed (none resumes when
#   Airflow starts again) and exits 130 (143 after SIGTERM).
#
#   ./scripts/main.sh                    # ... and keep serving the UI
#   ./scripts/main.sh --exit-when-done   # stop Airflow once the chain is done
#   ./scripts/main.sh --source DIR       # another corpus (multiplt corpus build --source)
#   ./scripts/main.sh --port 8081        # any other option goes to scripts/embedded_airflow.py
#   ./scripts/main.sh --no-setup         # skip scripts/setup.sh (everything already installed)
#   ./scripts/main.sh --help             # this text and (once .venv exists) every option;
#                                        # sets nothing up
#   ./scripts/main.sh --model bigcode/starcoderbase-1b --teacher http://gpu-host:8000/v1 \
#       --publish-repo me/multiplt-run  # a real base model, a served teacher, a real publication
#       (Hub endpoint and token: HF_ENDPOINT, HF_TOKEN)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# relative --model, --teacher and --source paths name paths from where the user started it
export MULTIPLT_CALLER_PWD="${MULTIPLT_CALLER_PWD:-$PWD}"
cd "$ROOT"
# -h/--help first: no setup, no model build, no Airflow
for arg in "$@"; do
  if [ "$arg" = "-h" ] || [ "$arg" = "--help" ]; then
    sed -n '2,/^set -euo pipefail/{/^set -euo pipefail/d;s/^# \{0,1\}//;p}' "$ROOT/scripts/main.sh"
    echo
    if [ -x .venv/bin/python ] && .venv/bin/python scripts/embedded_airflow.py --help >/dev/null 2>&1; then
      echo "Options of scripts/embedded_airflow.py (--port, --home, --data, --start-timeout) and of"
      echo "its main-job (all others; --model defaults to the tiny local model):"
      echo
      .venv/bin/python scripts/embedded_airflow.py --help
      echo
      .venv/bin/python scripts/embedded_airflow.py main-job --help
    else
      echo "The full list of options (scripts/embedded_airflow.py main-job --help) needs .venv: run"
      echo "scripts/setup.sh first. README.md describes every option."
    fi
    exit 0
  fi
done
setup=1 args=()
for arg in "$@"; do
  if [ "$arg" = "--no-setup" ]; then setup=0; else args+=("$arg"); fi
done
set -- "${args[@]}"
if ((setup)); then scripts/setup.sh; fi

# The embedded deployment's home and data live in the repo (git-ignored); the user never sets
# AIRFLOW_HOME (MULTIPLT_AIRFLOW_HOME / MULTIPLT_DATA override them).
export MULTIPLT_AIRFLOW_HOME="${MULTIPLT_AIRFLOW_HOME:-$ROOT/.airflow}"
export MULTIPLT_DATA="${MULTIPLT_DATA:-$ROOT/data}"
export AIRFLOW_HOME="$MULTIPLT_AIRFLOW_HOME"
export HF_HUB_DISABLE_TELEMETRY=1 DO_NOT_TRACK=1

# --model (the base model) defaults to the tiny local model, built here when missing. Unless
# --model or --teacher is a Hub id, --source is a Hub dataset (hf://...) or --publish-repo is
# given, Airflow and its stages run with HF_HUB_OFFLINE=1 (scripts/embedded_airflow.py decides:
# job_models.uses_hub; they inherit HF_ENDPOINT, HF_TOKEN).
global=() job=() model=""
while (($#)); do
  case "$1" in
    --port|--home|--data|--start-timeout) global+=("$1" "$2"); shift 2 ;;
    --port=*|--home=*|--data=*|--start-timeout=*) global+=("$1"); shift ;;
    --model) model="$2"; shift 2 ;;
    --model=*) model="${1#--model=}"; shift ;;
    *) job+=("$1"); shift ;;
  esac
done
if [ -z "$model" ]; then
  model="$ROOT/models/tiny"
  if [ ! -f "$model/config.json" ]; then
    # the build takes minutes: the job's other arguments are checked first (a bad one is one
    # line on stderr and exit 2 at once; the model is checked once it is built)
    MULTIPLT_PROG=main.sh .venv/bin/python scripts/embedded_airflow.py "${global[@]}" --check-only \
      main-job "${job[@]}"
    echo "main.sh: building the tiny local model in $model"
    HF_HUB_OFFLINE=1 .venv/bin/multiplt model init-tiny --out "$model"
  fi
  echo "main.sh: $(date +%T) tiny model ready: $model"
fi
# a usage error names main.sh (MULTIPLT_PROG), in one line
MULTIPLT_PROG=main.sh exec .venv/bin/python scripts/embedded_airflow.py "${global[@]}" main-job \
  --model "$model" "${job[@]}"
