#!/usr/bin/env python3
"""Wall time of the README's main job (`scripts/main.sh --exit-when-done`: the MultiPL-T chain
on the tiny model) on this machine.

Runs it end to end in a fresh AIRFLOW_HOME and data directory (the tiny model and .venv are
reused when present, as on a rerun), and records the result in bench/results/main_job.json with
the commit measured, the load average and when each DAG's runs started and ended.
Goal: under 15 minutes on 2 cores from a fresh clone.

    .venv/bin/python bench/main_job.py [--keep] [--no-setup] [-- extra main-job arguments]

--no-setup times the chain part alone (`scripts/main.sh --no-setup`: the tiny model build when
`models/tiny` is missing, then scripts/embedded_airflow.py main-job), for a checkout whose .venv
must not be reinstalled.
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


def phases(output: str) -> dict:
    """Wall-clock marks the job prints (model build, Airflow up, first and last state of every
    DAG's runs)."""
    marks: dict = {"runs": {}}
    for line in output.splitlines():
        if line.startswith("main.sh: building the tiny local model"):
            marks["model_built_by_this_run"] = True
        m = re.match(r"^main.sh: (\d\d:\d\d:\d\d) tiny model ready", line)
        if m:
            marks["model_ready_at"] = m.group(1)
        m = re.match(r"^(\d\d:\d\d:\d\d) embedded Airflow is healthy", line)
        if m:
            marks["airflow_healthy_at"] = m.group(1)
        m = re.match(r"^\s+(\d\d:\d\d:\d\d) (multiplt_\w+) (\S+): (\w+)$", line)
        if m:
            at, dag, run, state = m.groups()
            marks["runs"].setdefault(f"{dag} {run}", {}).setdefault(state, at)
    return marks


def block(output: str, title: str) -> list[str]:
    """The lines the job printed after `title` up to the next empty line."""
    lines = output.splitlines()
    if title not in lines:
        return []
    rest = lines[lines.index(title) + 1:]
    return rest[:rest.index("")] if "" in rest else rest


def commit() -> str:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                           capture_output=True, text=True).stdout.strip()
    return head.stdout.strip() + ("+uncommitted changes" if dirty else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temp AIRFLOW_HOME and data")
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "main_job.json"))
    parser.add_argument("--timeout", type=float, default=3600,
                        help="stop the job (cleanly, as Ctrl-C) after this many seconds")
    parser.add_argument("--no-setup", action="store_true",
                        help="time the chain part only (no scripts/setup.sh)")
    parser.add_argument("extra", nargs="*", help="extra arguments for scripts/main.sh")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="multiplt-main-job-"))
    env = {**os.environ, "MULTIPLT_AIRFLOW_HOME": str(work / "airflow"),
           "MULTIPLT_DATA": str(work / "data")}
    log_path = work / "main.log"
    load_before = os.getloadavg()
    measured_commit = commit()
    command = ["scripts/main.sh", *(["--no-setup"] if args.no_setup else []),
               "--exit-when-done", *args.extra]
    started = time.monotonic()
    started_at = datetime.datetime.now().strftime("%H:%M:%S")
    timed_out = False
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
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
        "benchmark": "main job: scripts/main.sh --exit-when-done (the MultiPL-T chain on the tiny "
                     "model: corpus stdlib, testgen, translate, finetune, evaluate, publish dry run; "
                     "every installed language, n=2, 128 new tokens)"
                     + (" -- chain part only, without scripts/setup.sh" if args.no_setup else ""),
        "command": command,
        "commit": measured_commit,
        "load_average_1_5_15": {"before": [round(x, 2) for x in load_before],
                                "after": [round(x, 2) for x in os.getloadavg()]},
        "wall_s": round(wall, 1),
        "goal_s": GOAL_S,
        "within_goal": proc.returncode == 0 and wall < GOAL_S,
        "timed_out_after_s": args.timeout if timed_out else None,
        "phases": {"started_at": started_at, **phases(output)},
        "exit_code": proc.returncode,
        "funnel": block(output, "funnel of every stage"),
        "empty_or_off": block(output, "runs and the stages that ended empty or were off"),
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
