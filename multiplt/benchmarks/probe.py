"""Run each problem's canonical solution against its rewritten check, recording every assert.

This runs TRUSTED code only: the benchmark's own canonical solutions and test code (never model
output), in a child Python process with a per-problem time limit, so a hanging or crashing
problem cannot take the builder down. The child is this file run as a script: standard library
only, JSON problems on stdin, one JSON line per problem on stdout.
"""

from __future__ import annotations

import json
import subprocess
import sys

CASES_PER_SITE = 10  # asserts in loops run up to 100 times; keep the first distinct ones


def run(problems: list[dict], timeout: float = 20.0) -> dict[str, dict]:
    """problems: {key, code, entry_point} with `code` = prompt + solution + rewritten tests."""
    if not problems:
        return {}
    try:
        proc = subprocess.run([sys.executable, "-I", __file__, str(timeout)],
                              input=json.dumps(problems), capture_output=True, text=True,
                              timeout=timeout * len(problems) + 60)
    except subprocess.TimeoutExpired:
        from multiplt.errors import MultipltError

        raise MultipltError(f"running the canonical solutions took longer than "
                            f"{timeout * len(problems) + 60:.0f}s; a problem ignores its time limit") from None
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            results[row["key"]] = row
    for p in problems:  # a crash of the child leaves later problems without a row
        results.setdefault(p["key"], {"key": p["key"], "cases": {}, "failures": {},
                                      "error": f"probe process died: {proc.stderr[-300:]}"})
    return results


# ---- the child process ---------------------------------------------------------------------

def _probe_one(problem: dict, timeout: float) -> dict:
    import copy
    import os
    import random
    import signal

    cases: dict[int, list] = {}
    seen: dict[int, set] = {}
    failures: dict[int, str] = {}

    def record(site, args, expected, tolerance, mode):
        try:
            result = entry(*copy.deepcopy(args))
        except Exception as exc:  # noqa: BLE001 (any failure of the reference is a drop reason)
            failures.setdefault(site, f"canonical solution raised {type(exc).__name__}: {exc}")
            return
        if mode == "truthy" and result is not expected:
            failures.setdefault(site, f"truthiness assert on a non-bool result {result!r}")
            return
        if mode == "tolerance":
            ok = abs(result - expected) < tolerance
        else:
            ok = result == expected
        if not ok:
            failures.setdefault(site, f"canonical solution returns {result!r}, not {expected!r}")
            return
        key = repr(args)
        if key in seen.setdefault(site, set()) or len(seen[site]) >= CASES_PER_SITE:
            return
        seen[site].add(key)
        cases.setdefault(site, []).append([repr(args), repr(expected), repr(result), repr(tolerance)])

    calls: list = []
    call_keys: set = set()

    def recording_candidate(*args):
        snapshot = repr(args)
        result = entry(*args)
        if snapshot not in call_keys and len(call_keys) < CASES_PER_SITE:
            call_keys.add(snapshot)
            calls.append([snapshot, repr(result)])
        return result

    def on_alarm(signum, frame):
        raise TimeoutError(f"no result within {timeout}s")

    namespace = {"__name__": "__multiplt_probe__", "__multiplt_record": record}
    error = None
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(timeout))
    devnull = open(os.devnull, "w")
    real_stdout, sys.stdout = sys.stdout, devnull
    try:
        random.seed(0)
        exec(compile(problem["code"], problem["key"], "exec"), namespace)
        entry = namespace[problem["entry_point"]]
        namespace["check"](recording_candidate)
    except BaseException as exc:  # noqa: BLE001
        error = f"{type(exc).__name__}: {str(exc)[:200]}"
    finally:
        signal.alarm(0)
        sys.stdout = real_stdout
        devnull.close()
    return {"key": problem["key"], "cases": cases, "failures": failures, "calls": calls,
            "error": error}


def _main() -> None:
    timeout = float(sys.argv[1])
    problems = json.load(sys.stdin)
    out = sys.stdout
    for problem in problems:
        print(json.dumps(_probe_one(problem, timeout)), file=out, flush=True)


if __name__ == "__main__":
    _main()
