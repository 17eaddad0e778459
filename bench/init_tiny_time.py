"""Wall time of `multiplt model init-tiny` on this machine (goal: under 5 minutes on 2 CPU cores).

    .venv/bin/python bench/init_tiny_time.py      # writes bench/results/init_tiny.json
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "multiplt", "model", "init-tiny", "--out", f"{tmp}/tiny"]
        load = os.getloadavg()
        start = time.perf_counter()
        subprocess.run(argv, check=True, cwd=tmp, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        loadable = (pathlib.Path(tmp) / "tiny" / "config.json").is_file()
    result = {"command": "multiplt model init-tiny --out DIR", "wall_s": round(wall, 1),
              "goal_s": 300, "within_goal": wall < 300, "saved_model": loadable,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "loadavg_at_start": [round(x, 2) for x in load]},
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    out = ROOT / "bench" / "results" / "init_tiny.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
