#!/usr/bin/env python3
"""Wall time of the README's main job (`scripts/main.sh --exit-when-done`) on this machine.

Runs it end to end in a fresh AIRFLOW_HOME and data directory (the tiny model and .venv are
reused when present, as on a rerun), and records the result in bench/results/main_job.json.
Goal: under 15 minutes on 2 cores.

    .venv/bin/python bench/main_job.py [--keep] [-- extra main.sh arguments]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL_S = 15 * 60


def phases(output: str) -> dict[str, str]:
    """Wall-clock marks the job prints (model build, Airflow up, run states)."""
    marks = {}
    for line in output.splitlines():
        if line.startswith("main.sh: building the tiny local model"):
            marks["model_built_by_this_run"] = True
        m = re.match(r"^main.sh: (\d\d:\d\d:\d\d) tiny model ready", line)
        if m:
            marks["model_ready_at"] = m.group(1)
        m = re.match(r"^(\d\d:\d\d:\d\d) embedded Airflow is healthy", line)
        if m:
            marks["airflow_healthy_at"] = m.group(1)
        m = re.match(r"^\s+(\d\d:\d\d:\d\d) (queued|running|success|failed)$", line)
        if m:
            marks.setdefault(f"run_{m.group(2)}_at", m.group(1))
    return marks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temp AIRFLOW_HOME and data")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "main_job.json"))
    parser.add_argument("--timeout", type=float, default=3600,
                        help="stop the job (cleanly, as Ctrl-C) after this many seconds")
    parser.add_argument("extra", nargs="*", help="extra arguments for scripts/main.sh")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="multiplt-main-job-"))
    env = {**os.environ, "MULTIPLT_AIRFLOW_HOME": str(work / "airflow"),
           "MULTIPLT_DATA": str(work / "data")}
    log_path = work / "main.log"
    started = time.monotonic()
    started_at = datetime.datetime.now().strftime("%H:%M:%S")
    timed_out = False
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([str(REPO / "scripts" / "main.sh"), "--exit-when-done", *args.extra],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(args.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True  # SIGTERM: the launcher stops Airflow as on Ctrl-C
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
    wall = time.monotonic() - started
    output = log_path.read_text(errors="replace")
    table = [line for line in output.splitlines()
             if re.match(r"^\S+\s+\d+\s+\d\.\d{4}\s+\d+\s", line)]
    result = {
        "benchmark": "main job: scripts/main.sh --exit-when-done (setup, tiny model, embedded "
                     "Airflow, multiplt_evaluate on every installed language, n=2, 128 new tokens)",
        "wall_s": round(wall, 1),
        "goal_s": GOAL_S,
        "within_goal": proc.returncode == 0 and wall < GOAL_S,
        "timed_out_after_s": args.timeout if timed_out else None,
        "phases": {"started_at": started_at, **phases(output)},
        "exit_code": proc.returncode,
        "pass_at_k_rows": table,
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if proc.returncode != 0:
        print(f"main job failed; last lines of {log_path}:\n" + "\n".join(output.splitlines()[-40:]),
              file=sys.stderr)
    if args.keep or proc.returncode != 0:
        print(f"kept {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
