"""Asserts validated per second (the executor part of `multiplt testgen`) and functions per
second end to end with the replay backend, on this machine (goal: >= 100 asserts/s on 2 cores,
sandbox included).

Three measurements on the same synthetic functions (small typed functions with branches; 5
asserts each, 4 right and 1 wrong):
1. `fresh_interpreter`: today's executor path, one sandboxed program (a fresh `python3`) per
   assert through `Sandbox.run`, `--workers` threads: what the asserts would cost without the
   testgen runner;
2. `runner_validate_only`: the testgen runner (validate.py + runner.py: one warm interpreter per
   batch, one forked child per assert), no coverage run;
3. `runner_with_coverage`: the same plus each function's coverage-and-types run (what
   `multiplt testgen` does);
and `end_to_end`: `multiplt testgen --backend replay` on the same functions (prompts,
replayed completions, parsing, validation, coverage, types, parquet), functions per second;
and `cpu_unsandboxed`: CPU ms per assert of a fresh interpreter against the runner, measured
without the sandbox (CPU time is what a shared machine distorts least).
All verdicts are checked (4 pass, 1 fails per function), so a fast wrong path cannot look good.

    .venv/bin/python bench/testgen_throughput.py [--functions 200] [--workers 2]
Writes bench/results/testgen_throughput.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from multiplt import languages  # noqa: E402
from multiplt.execution.sandbox import Sandbox  # noqa: E402
from multiplt.testgen import outcome  # noqa: E402
from multiplt.testgen.validate import Check, coverage_path, run_checks  # noqa: E402

GOAL = 100.0


def function(i: int) -> tuple[str, str, list[str]]:
    name = f"score_{i}"
    content = (f'def {name}(xs, k):\n    """Sum of the items above k, plus {i}."""\n'
               f"    total = 0\n    for x in xs:\n        if x > k:\n            total += x\n"
               f"    return total + {i}\n")
    asserts = [f"assert {name}([1, 2, 3], 1) == {5 + i}", f"assert {name}([], 0) == {i}",
               f"assert {name}([5], 9) == {i}", f"assert {name}([4, 4], 0) == {8 + i}",
               f"assert {name}([1], 0) == {i}"]  # the last one is wrong
    return name, content, asserts


def machine() -> dict:
    return {"hostname": platform.node(), "cpus": os.cpu_count(),
            "cores_available": len(os.sched_getaffinity(0)), "kernel": platform.release(),
            "python": platform.python_version(), "loadavg_at_start": list(os.getloadavg())}


def bench_fresh(funcs, workers: int) -> dict:
    py = languages.get("py")
    programs = [(content + "\n\n" + a + "\n", j < 4) for _n, content, asserts in funcs
                for j, a in enumerate(asserts)]
    with Sandbox() as sandbox:
        sandbox.check()
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(
                workers, initializer=sandbox.enter_worker_thread) as pool:
            results = list(pool.map(lambda p: sandbox.run(py, p[0], 5.0), programs))
        seconds = time.monotonic() - started
        mode = sandbox.mode
    assert [r.exit_code == 0 for r in results] == [ok for _p, ok in programs], "wrong verdicts"
    return {"asserts": len(programs), "seconds": round(seconds, 3),
            "asserts_per_s": round(len(programs) / seconds, 1), "sandbox": mode}


def bench_runner(funcs, workers: int, with_coverage: bool) -> dict:
    from multiplt.testgen import execute

    checks = [Check(hashlib.sha1(c.encode()).hexdigest(), c, n, list(a)) for n, c, a in funcs]
    cov = coverage_path() if with_coverage else None
    with Sandbox() as sandbox:
        sandbox.check()
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(
                workers, initializer=sandbox.enter_worker_thread) as pool:
            list(pool.map(lambda b: run_checks(sandbox, b, 5.0, cov_path=cov),
                          execute._batches(checks)))
        seconds = time.monotonic() - started
        mode = sandbox.mode
    assert all(c.statuses == ["OK"] * 4 + ["AssertionError"] for c in checks), "wrong verdicts"
    if with_coverage:
        spans = [outcome.body_lines(c.prefix, c.entrypoint) for c in checks]
        assert all(outcome.coverage_percent(c.coverage, s) == 100 for c, s in zip(checks, spans))
    n = sum(len(c.asserts) for c in checks)
    return {"asserts": n, "functions": len(checks), "seconds": round(seconds, 3),
            "asserts_per_s": round(n / seconds, 1),
            "functions_per_s": round(len(checks) / seconds, 2),
            "batch_asserts": execute.BATCH_ASSERTS, "sandbox": mode}


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def bench_cpu(funcs) -> dict:
    """CPU ms per assert WITHOUT the sandbox (so every process is our waited-for descendant and
    its CPU time is counted): a fresh `python3 -I -B` per assert against the runner. CPU time
    is less distorted than wall time on a machine shared with other work."""
    import subprocess

    from multiplt.testgen.validate import program

    with tempfile.TemporaryDirectory() as tmp:
        fresh = [(c + "\n\n" + a + "\n") for _n, c, asserts in funcs[:20] for a in asserts]
        before = _children_cpu()
        for text in fresh:
            path = os.path.join(tmp, "p.py")
            with open(path, "w") as f:
                f.write(text)
            subprocess.run(["python3", "-I", "-B", path], capture_output=True, cwd=tmp)
        fresh_ms = (_children_cpu() - before) * 1000 / len(fresh)
        out = {"fresh_interpreter_cpu_ms_per_assert": round(fresh_ms, 2)}
        checks = [Check(str(i), c, n, list(a)) for i, (n, c, a) in enumerate(funcs)]
        for key, cov in (("runner", None), ("runner_with_coverage", coverage_path())):
            path = os.path.join(tmp, "program.py")
            with open(path, "w") as f:
                f.write(program(checks, 5.0, 60.0, False, cov))
            before = _children_cpu()
            done = subprocess.run(["python3", "-I", "-B", path], capture_output=True, text=True,
                                  cwd=tmp)
            assert done.returncode == 0, done.stderr[-500:]
            n = sum(len(c.asserts) for c in checks)
            out[f"{key}_cpu_ms_per_assert"] = round((_children_cpu() - before) * 1000 / n, 2)
    return out


def bench_end_to_end(funcs, workers: int) -> dict:
    import polars as pl

    from multiplt.testgen.config import TestgenConfig
    from multiplt.testgen.pipeline import run

    with tempfile.TemporaryDirectory() as tmp:
        rows, replay = [], []
        for name, content, asserts in funcs:
            sha = hashlib.sha1(content.encode()).hexdigest()
            rows.append({"content": content, "id": name, "sha1": sha, "entrypoint": name,
                         "context": ""})
            cut = len(f"assert {name}(")
            replay.append({"name": sha, "completion": "\n".join(asserts)[cut:] + "\n"})
        pl.DataFrame(rows).write_parquet(os.path.join(tmp, "functions.parquet"))
        with open(os.path.join(tmp, "replay.jsonl"), "w") as f:
            f.write("".join(json.dumps(r) + "\n" for r in replay))
        cfg = TestgenConfig(functions=os.path.join(tmp, "functions.parquet"),
                            out=os.path.join(tmp, "out"), backend="replay", n=1,
                            replay_source=os.path.join(tmp, "replay.jsonl"), workers=workers)
        started = time.monotonic()
        summary = run(cfg)
        seconds = time.monotonic() - started
    assert summary["kept"] == len(funcs), summary
    return {"functions": len(funcs), "seconds": round(seconds, 3),
            "functions_per_s": round(len(funcs) / seconds, 2), "kept": summary["kept"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--functions", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "testgen_throughput.json"))
    args = parser.parse_args()
    funcs = [function(i) for i in range(args.functions)]
    result = {"command": "bench/testgen_throughput.py " + " ".join(sys.argv[1:]),
              "machine": machine(), "workers": args.workers, "goal_asserts_per_s": GOAL}
    for key, fn in (("fresh_interpreter", lambda: bench_fresh(funcs, args.workers)),
                    ("runner_validate_only", lambda: bench_runner(funcs, args.workers, False)),
                    ("runner_with_coverage", lambda: bench_runner(funcs, args.workers, True)),
                    ("end_to_end", lambda: bench_end_to_end(funcs, args.workers)),
                    ("cpu_unsandboxed", lambda: bench_cpu(funcs))):
        result[key] = fn()
        print(key, json.dumps(result[key]), flush=True)
    result["machine"]["loadavg_at_end"] = list(os.getloadavg())
    result["goal_met"] = result["runner_with_coverage"]["asserts_per_s"] >= GOAL
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
