"""Programs executed per second, per installed language: `multiplt execute` (sandboxed, parallel)
against the naive baseline (one fresh interpreter per program, serially, no sandbox).

The fixed set: the hand-written reference solutions (tests/fixtures/solutions: a correct and a
wrong completion per problem) on the HumanEval benchmark our builder makes, each made unique by
a trailing comment and repeated until there are at least --min-programs programs per language.
Both sides run exactly the same programs; their verdicts (statuses) must be identical.

    .venv/bin/python bench/execute_throughput.py                 # all installed languages
    .venv/bin/python bench/execute_throughput.py --langs lua,ml  # some
Writes bench/results/execute_throughput.json (goal: ratio >= 1.7 in every language on 2 cores);
`--merge` updates only the measured languages in it. "cpu_ms_per_program" of the baseline is
its interpreters' CPU time (not measurable for ours: the sandbox's processes are not our
waited-for children).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import platform
import resource
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from multiplt import languages, storage  # noqa: E402
from multiplt.benchmarks.build import build_benchmark  # noqa: E402
from multiplt.evaluation import run_folder  # noqa: E402
from multiplt.execution import files  # noqa: E402
from multiplt.execution.executor import default_workers, execute  # noqa: E402
from multiplt.execution.preflight import missing_binaries  # noqa: E402
from multiplt.languages.base import TIMEOUT  # noqa: E402
from tests.fixtures import solutions  # noqa: E402

GOAL = 1.7
COMMENT = {"rkt": ";", "r": "#", "ml": "(*", "lua": "--", "jl": "#"}


def make_folder(code: str, folder: str, min_programs: int) -> list[tuple[str, int]]:
    """The completions folder; returns (problem, index) of every program, in execution order."""
    names = list(solutions.load(code))
    bench = os.path.join(folder, "benchmark.jsonl")
    build_benchmark("humaneval", code, bench, problems=names)
    written = solutions.write_completion_folder(bench, code, folder)
    repeats = math.ceil(min_programs / (2 * len(written)))
    order = []
    for name in written:
        uri = storage.join(folder, name + ".json.gz")
        doc = storage.read_json(uri)
        ok, bad = doc["completions"]
        close = " *)" if code == "ml" else ""
        doc["completions"] = [f"{text}\n{COMMENT[code]} copy {i}{close}\n"
                              for i in range(repeats) for text in (ok, bad)]
        storage.write_json(uri, doc)
        order += [(name, i) for i in range(len(doc["completions"]))]
    os.unlink(bench)
    os.unlink(bench + ".report.json")
    return order


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and its waited-for children."""
    return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF,
               resource.RUSAGE_CHILDREN) for f in ("ru_utime", "ru_stime"))


def baseline(code: str, folder: str, order) -> tuple[float, dict]:
    """One fresh interpreter per program, one after another, no sandbox."""
    lang = languages.get(code)
    docs = {name: storage.read_json(storage.join(folder, name + ".json.gz"))
            for name in {n for n, _ in order}}
    verdicts = {}
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for name, i in order:
            path = os.path.join(tmp, f"program.{lang.file_ext}")
            with open(path, "w") as f:
                f.write(files.program(docs[name], docs[name]["completions"][i]))
            try:
                p = subprocess.run(lang.command(path), capture_output=True, text=True,
                                   timeout=lang.timeout, stdin=subprocess.DEVNULL, cwd=tmp)
                verdicts[(name, i)] = lang.classify(p.returncode, p.stdout, p.stderr)
            except subprocess.TimeoutExpired:
                verdicts[(name, i)] = TIMEOUT
        return time.perf_counter() - start, verdicts


def ours(folder: str, workers: int) -> tuple[float, dict]:
    start = time.perf_counter()
    counts = execute(folder, workers=workers)
    seconds = time.perf_counter() - start
    verdicts = {}
    for uri in storage.ls(folder):
        if uri.endswith(run_folder.RESULTS_SUFFIX):
            doc = storage.read_json(uri)
            for i, r in enumerate(doc["results"]):
                verdicts[(doc["name"], i)] = r["status"]
    return seconds, verdicts, counts["sandbox"]


def machine() -> dict:
    model = ""
    try:
        model = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"hostname": platform.node(), "cpus": os.cpu_count(),
            "cores_available": len(os.sched_getaffinity(0)), "cpu_model": model,
            "kernel": platform.release(), "python": platform.python_version(),
            "loadavg_at_start": os.getloadavg()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--langs", default=",".join(solutions.LANGS))
    parser.add_argument("--min-programs", type=int, default=300)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--out", default=str(ROOT / "bench/results/execute_throughput.json"))
    parser.add_argument("--merge", action="store_true",
                        help="keep the other languages' entries already in --out")
    args = parser.parse_args()
    report = {"command": " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
              "machine": machine(), "workers": args.workers, "goal_ratio": GOAL, "languages": {}}
    for code in args.langs.split(","):
        missing = missing_binaries(languages.get(code))
        if missing:
            report["languages"][code] = {"skipped": f"{', '.join(missing)} not installed"}
            print(f"{code}: skipped ({', '.join(missing)} not installed)", flush=True)
            continue
        with tempfile.TemporaryDirectory(prefix=f"bench-{code}-") as folder:
            order = make_folder(code, folder, args.min_programs)
            load0 = list(os.getloadavg())
            cpu0 = cpu_seconds()
            base_s, base_v = baseline(code, folder, order)
            cpu1 = cpu_seconds()
            our_s, our_v, mode = ours(folder, args.workers)
        n = len(order)
        differing = sorted(f"{k[0]}#{k[1]}: {base_v.get(k)} vs {our_v.get(k)}"
                           for k in order if base_v.get(k) != our_v.get(k))
        entry = {"programs": n,
                 "baseline": {"seconds": round(base_s, 3), "programs_per_s": round(n / base_s, 3),
                              "cpu_ms_per_program": round(1000 * (cpu1 - cpu0) / n, 3)},
                 "ours": {"seconds": round(our_s, 3), "programs_per_s": round(n / our_s, 3),
                          "sandbox": mode, "workers": args.workers},
                 "command": report["command"], "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "loadavg_before": load0, "loadavg_after": list(os.getloadavg()),
                 "ratio": round(base_s / our_s, 3), "verdicts_identical": not differing,
                 "verdict_differences": differing[:20]}
        entry["goal_met"] = entry["ratio"] >= GOAL and not differing
        report["languages"][code] = entry
        print(f"{code}: {n} programs, baseline {n / base_s:.2f}/s, ours {n / our_s:.2f}/s, "
              f"ratio {entry['ratio']:.2f}, verdicts identical: {not differing}", flush=True)
    report["machine"]["loadavg_at_end"] = os.getloadavg()
    if args.merge and os.path.exists(args.out):
        # Keep the other languages' entries of an earlier run (each carries its own command,
        # time and load averages).
        with open(args.out) as f:
            earlier = json.load(f)
        report["languages"] = {**earlier.get("languages", {}), **report["languages"]}
        report["command"] = "; ".join(dict.fromkeys([earlier.get("command", ""), report["command"]]))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
