#!/usr/bin/env python3
"""Start the embedded Airflow and, optionally, run the platform's main job on it.

    scripts/embedded_airflow.py serve                  # start, print the UI address and login, wait
    scripts/embedded_airflow.py main-job --model DIR   # start, evaluate DIR on every installed
                                                       # language, print pass@k, keep serving
    scripts/embedded_airflow.py main-job --model DIR --exit-when-done

AIRFLOW_HOME defaults to <repo>/.airflow and the data directory to $MULTIPLT_DATA or <repo>/data
(both git-ignored); the port to 8080 when free, else a free one. Ctrl-C stops every component.
Used by scripts/main.sh; the Python API is plugins/multiplt_airflow/embedded.py.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "plugins"))

from multiplt_airflow.embedded import EmbeddedAirflow, free_port  # noqa: E402

EVALUATE_DAG = "multiplt_evaluate"


def pick_port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            return free_port()


def installed_languages() -> list[str]:
    """Languages whose run-time binaries are on PATH (Julia is not packaged by Debian)."""
    from multiplt import languages

    return [code for code, lang in languages.LANGUAGES.items()
            if all(shutil.which(b) for b in lang.binaries)]


def wait_for_ctrl_c(airflow: EmbeddedAirflow) -> None:
    print("Airflow keeps running; press Ctrl-C to stop it.", flush=True)
    try:
        while True:
            for name, proc in airflow.processes.items():
                if proc.poll() is not None:
                    print(f"airflow {name} exited ({proc.returncode}); see {airflow.log_dir}",
                          file=sys.stderr)
                    return
            time.sleep(2)
    except KeyboardInterrupt:
        print("\nstopping Airflow ...", flush=True)


def print_scores(airflow: EmbeddedAirflow, model: str, since: datetime.datetime) -> bool:
    """The pass@k table of this run's rows in the results store."""
    import configparser

    from multiplt.results import read_store

    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(airflow.config_path)
    store = os.environ.get("AIRFLOW__MULTIPLT__RESULTS_STORE") or cfg.get("multiplt", "results_store")
    df = read_store(store)
    rows = [r for r in df.to_dicts() if r.get("model") == model
            and (r.get("created_at") is None or _as_utc(r["created_at"]) >= since)]
    if not rows:
        print(f"no results for {model} in {store}", file=sys.stderr)
        return False
    print(f"\npass@k of {model} (results store: {store})")
    print(f"{'language':<10} {'k':>3} {'estimate':>9} {'problems':>9}  run")
    for r in sorted(rows, key=lambda r: (r["lang"], r["k"])):
        print(f"{r['lang']:<10} {r['k']:>3} {r['estimate']:>9.4f} {r['num_problems']:>9}  {r['run_id']}")
    return True


def _as_utc(value) -> datetime.datetime:
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def main_job(airflow: EmbeddedAirflow, args) -> int:
    if not (REPO / "dags" / f"{EVALUATE_DAG}.py").exists():
        print(f"dags/{EVALUATE_DAG}.py does not exist yet: Airflow is up, nothing to run.")
        return 0
    langs = args.languages.split(",") if args.languages else installed_languages()
    conf = {"model": args.model, "languages": langs, "n": args.n,
            "max_new_tokens": args.max_new_tokens, "experiment": "main_job", "epoch": 0}
    if args.limit:
        conf["limit"] = args.limit
    since = datetime.datetime.now(datetime.timezone.utc)
    print(f"triggering {EVALUATE_DAG} on {args.model} for {', '.join(langs)} "
          f"(n={args.n}, max_new_tokens={args.max_new_tokens})", flush=True)
    run_id = airflow.client.trigger(EVALUATE_DAG, conf)
    print(f"run {run_id}: {airflow.base_url}/dags/{EVALUATE_DAG}/runs/{run_id}", flush=True)
    last = [None]

    def report(state):
        if state != last[0]:
            print(f"  {datetime.datetime.now():%H:%M:%S} {state}", flush=True)
            last[0] = state

    state = airflow.client.wait_for_run(EVALUATE_DAG, run_id, timeout=args.timeout, on_poll=report)
    if state != "success":
        failed = [ti["task_id"] for ti in airflow.client.task_instances(EVALUATE_DAG, run_id)
                  if ti["state"] not in ("success", "skipped")]
        print(f"{EVALUATE_DAG} run {run_id} {state}; tasks not successful: {failed}", file=sys.stderr)
        return 1
    return 0 if print_scores(airflow, args.model, since) else 1


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=os.environ.get("MULTIPLT_AIRFLOW_HOME", str(REPO / ".airflow")),
                        help="AIRFLOW_HOME of this deployment (default: <repo>/.airflow)")
    parser.add_argument("--data", default=os.environ.get("MULTIPLT_DATA", str(REPO / "data")),
                        help="data directory: database, pipeline runs, results (default: <repo>/data)")
    parser.add_argument("--port", type=int, default=0,
                        help="API/UI port on 127.0.0.1 (default: 8080 if free, else a free one)")
    parser.add_argument("--start-timeout", type=float, default=600)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("serve", help="start Airflow and wait for Ctrl-C")
    job = sub.add_parser("main-job", help="evaluate a model on every installed language")
    job.add_argument("--model", required=True, help="model folder or Hub id (the tiny local model)")
    job.add_argument("--languages", help="comma-separated codes (default: every installed language)")
    job.add_argument("--n", type=int, default=2, help="completions per problem (default 2)")
    job.add_argument("--max-new-tokens", type=int, default=128)
    job.add_argument("--limit", type=int, help="only the first N problems (default: all)")
    job.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the run")
    job.add_argument("--exit-when-done", action="store_true", help="stop Airflow after the run")
    args = parser.parse_args(argv)

    airflow = EmbeddedAirflow(args.home, port=args.port or pick_port(8080), data_dir=args.data,
                              env={"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"})
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops Airflow as cleanly as Ctrl-C
    print(f"starting embedded Airflow (AIRFLOW_HOME={airflow.airflow_home}) ...", flush=True)
    rc = 0
    try:
        airflow.start(timeout=args.start_timeout)
        print(f"{datetime.datetime.now():%H:%M:%S} embedded Airflow is healthy", flush=True)
        print(airflow.login_text(), flush=True)
        if args.cmd == "main-job":
            rc = main_job(airflow, args)
            print(airflow.login_text(), flush=True)
            if args.exit_when_done:
                return rc
        wait_for_ctrl_c(airflow)
    except KeyboardInterrupt:
        print("\nstopping Airflow ...", flush=True)
    finally:
        airflow.stop()
    return rc


if __name__ == "__main__":
    sys.exit(main())
