"""Functions per second through the whole `multiplt corpus build` on the `stdlib` corpus, with
the time of each filter (Pyright's share shown). Goal: the whole stdlib in under 3 minutes on
2 CPU cores. Other work on the machine skews the wall time: the load average is recorded with the result,
and so is the CPU time of the command and its Pyright processes.

    .venv/bin/python bench/corpus_throughput.py [--workers 2] [--out bench/results/corpus_throughput.json]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import resource
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
GOAL_S = 180


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--source", default="stdlib")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "corpus_throughput.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = f"{tmp}/corpus"
        argv = ["corpus", "build", "--source", args.source, "--out", out, "--workers", str(args.workers)]
        load_start = os.getloadavg()
        cpu_start = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "multiplt", *argv], check=True, cwd=tmp,
                       stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        cpu_end = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_end = os.getloadavg()
        funnel = json.loads(pathlib.Path(out, "funnel.json").read_text())
        stats = json.loads(next(pathlib.Path(out, "_work", "shards").glob("*/stats.json")).read_text())
    steps = funnel["steps"]
    per_filter = {s["name"]: round(s["seconds"], 2) for s in steps if "seconds" in s}
    per_filter["signatures"] = round(stats["signature_seconds"], 2)
    per_filter["dedup_and_merge"] = round(seconds - stats["seconds"], 2)  # incl. process start
    functions_in, functions_out = steps[0]["in"], steps[-1]["out"]
    result = {
        "command": "multiplt " + " ".join(argv).replace(out, "DIR"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "loadavg_at_start": [round(x, 2) for x in load_start],
                    "loadavg_at_end": [round(x, 2) for x in load_end]},
        "files_in": funnel["files"]["read"],
        "functions_in": functions_in,
        "functions_out": functions_out,
        "seconds": round(seconds, 1),
        "functions_per_second": round(functions_in / seconds, 1),
        # CPU time of the command and its Pyright processes: what a quiet 2-core machine needs
        # at least cpu_seconds / 2 of wall time for, however loaded this one was
        "cpu_seconds": round((cpu_end.ru_utime - cpu_start.ru_utime)
                             + (cpu_end.ru_stime - cpu_start.ru_stime), 1),
        "per_filter_seconds": per_filter,
        "pyright_share": round(per_filter.get("typecheck", 0.0) / seconds, 3),
        "funnel": [{k: s[k] for k in ("name", "in", "out")} for s in steps],
        "goal_s": GOAL_S,
        "within_goal": seconds < GOAL_S,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
