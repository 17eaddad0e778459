"""Cost per program of the container path against the local sandbox: the same completions run by
`multiplt execute` on this machine and by `multiplt execute` in the sandbox image, started as
the docker runtime starts a sandbox run step (no network, uid 10001, no capabilities,
docker_stage.RUN_HOST_CONFIG). Both sides must give the same verdicts.

    .venv/bin/python bench/docker_execute.py --langs lua,r --min-programs 200

Programs: the reference solutions (a correct and a wrong completion per problem, see
bench/execute_throughput.py), repeated to at least --min-programs per language. The container
side's wall time includes starting and removing the container; the container start alone
(`multiplt --version`) is measured too. Writes bench/results/docker_execute.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "plugins"))

from multiplt import storage  # noqa: E402
from multiplt.execution import files  # noqa: E402
from multiplt_airflow.docker_stage import RUN_HOST_CONFIG, SANDBOX_USER  # noqa: E402

# the same programs and machine facts as bench/execute_throughput.py
_spec = importlib.util.spec_from_file_location("execute_throughput", ROOT / "bench/execute_throughput.py")
_throughput = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_throughput)
machine, make_folder = _throughput.machine, _throughput.make_folder


def docker_run(image: str, args: list[str], mount: str | None = None) -> list[str]:
    argv = ["docker", "run", "--rm", "--network", "none", "--user", SANDBOX_USER]
    argv += [f"--cap-drop={c}" for c in RUN_HOST_CONFIG["cap_drop"]]
    argv += [f"--security-opt={o}" for o in RUN_HOST_CONFIG["security_opt"]]
    if RUN_HOST_CONFIG["MaskedPaths"] == RUN_HOST_CONFIG["ReadonlyPaths"] == []:
        argv += ["--security-opt=systempaths=unconfined"]
    if mount:
        argv += ["-v", f"{mount}:/run-dir"]
    return argv + [image, *args]


def verdicts(folder: str) -> dict:
    out = {}
    for uri in storage.ls(folder):
        if uri.endswith(files.RESULTS_SUFFIX):
            doc = storage.read_json(uri)
            for i, r in enumerate(doc["results"]):
                out[f"{doc['name']}/{i}"] = r["status"]
    return out


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--langs", default="lua,r")
    parser.add_argument("--min-programs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--image", default="multiplt-sandbox:latest")
    parser.add_argument("--out", default=str(ROOT / "bench/results/docker_execute.json"))
    args = parser.parse_args()
    starts = [timed(docker_run(args.image, ["--version"])) for _ in range(3)]
    report = {"machine": machine(), "image": args.image, "workers": args.workers,
              "container_start_s": round(min(starts), 3), "langs": {}}
    for code in args.langs.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            local, container = os.path.join(tmp, "local"), os.path.join(tmp, "container")
            os.makedirs(local)
            os.makedirs(container)
            os.chmod(container, 0o777)
            order = make_folder(code, local, args.min_programs)
            make_folder(code, container, args.min_programs)
            execute = ["execute", "--workers", str(args.workers)]
            local_s = timed([sys.executable, "-m", "multiplt", *execute, "--in", local])
            container_s = timed(docker_run(args.image, [*execute, "--in", "/run-dir"], container))
            same = verdicts(local) == verdicts(container)
            n = len(order)
            report["langs"][code] = {
                "programs": n, "local_s": round(local_s, 2), "container_s": round(container_s, 2),
                "local_ms_per_program": round(1000 * local_s / n, 1),
                "container_ms_per_program": round(1000 * container_s / n, 1),
                "container_over_local": round(container_s / local_s, 3), "same_verdicts": same}
            print(code, report["langs"][code], flush=True)
            if not same:
                print(f"{code}: the verdicts differ", file=sys.stderr)
                return 1
    pathlib.Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
