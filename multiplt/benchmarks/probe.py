"""Run each problem's canonical solution against its rewritten check, recording every assert.

A source's canonical solutions and tests are code we did not write (a path, an S3 object or a
Hugging Face dataset can hold anything), so each problem runs as its own program in the
execution sandbox (multiplt/execution), exactly as `multiplt execute` runs a Python completion:
`python3 -s -B` (PYTHONHASHSEED=0) as uid 65534, no network, a read-only host, only the sandbox's environment, the
sandbox's limits, killed a little after its time limit. Where no sandbox can start (e.g. the
worker image, which has no bubblewrap: only the sandbox image does), the programs run as plain
child processes, as `execute --unsafe-no-sandbox` runs programs (with the sandbox's environment,
not ours: no credentials), and a warning says so with the sandbox's reason: they are a benchmark's own code, not model output, and that is how every build
ran them before. `unsafe_no_sandbox` asks for plain children from the start. The program is this
module's child part (`_probe_one`, standard library only) with the problem written into it; it
prints one JSON line.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import json
import logging
import secrets
import sys

from multiplt import languages
from multiplt.errors import PlatformError
from multiplt.execution.executor import default_workers, results_in_order
from multiplt.execution.preflight import preflight
from multiplt.execution.retry import run_with_retries
from multiplt.execution.sandbox import Sandbox

LOG = logging.getLogger("multiplt.benchmarks")
CASES_PER_SITE = 10  # asserts in loops run up to 100 times; keep the first distinct ones
#: seconds a problem's program may run beyond its time limit (start-up) before it is killed
GRACE_S = 10.0


def run(problems: list[dict], timeout: float = 20.0, unsafe_no_sandbox: bool = False,
        workers: int | None = None) -> dict[str, dict]:
    """problems: {key, code, entry_point} with `code` = prompt + solution + rewritten tests;
    returns {key: {key, cases, failures, calls, error}}, one row per problem. Without a working
    sandbox the programs run as plain children (see the module's docstring); PlatformError when
    Python does not run even so."""
    if not problems:
        return {}
    lang = languages.get("py")
    marker = f"multiplt-probe-{secrets.token_hex(8)}:"  # a row is the line that starts with it

    def one(problem: dict) -> dict:
        program = _program(problem, timeout, marker)
        finished = run_with_retries(sandbox, lang, program, timeout + GRACE_S)
        rows = [line[len(marker):] for line in finished.stdout.splitlines() if line.startswith(marker)]
        if rows and not finished.timed_out:
            try:
                row = json.loads(rows[-1])
                if isinstance(row, dict) and row.get("key") == problem["key"]:
                    return row
            except ValueError:
                pass
        why = (f"killed after {timeout + GRACE_S:.0f}s (the problem ignores its time limit)"
               if finished.timed_out else
               f"probe process died (exit {finished.exit_code}): {finished.stderr[-300:]}")
        return {"key": problem["key"], "cases": {}, "failures": {}, "calls": [], "error": why}

    if not unsafe_no_sandbox:
        try:
            with Sandbox() as sandbox:
                preflight(sandbox, [lang])  # Python runs in the sandbox, or a PlatformError says why
        except PlatformError as exc:
            LOG.warning("no sandbox here (%s): running the source's canonical solutions and tests "
                        "(the benchmark's code, not model output) as plain child processes", exc)
            unsafe_no_sandbox = True
    with Sandbox(unsafe_no_sandbox=unsafe_no_sandbox) as sandbox:
        preflight(sandbox, [lang])
        pool = concurrent.futures.ThreadPoolExecutor(
            min(workers or default_workers(), len(problems)), thread_name_prefix="multiplt-probe",
            initializer=sandbox.enter_worker_thread)
        try:
            rows = list(results_in_order([pool.submit(one, p) for p in problems]))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
    return {row["key"]: row for row in rows}


def _program(problem: dict, timeout: float, marker: str) -> str:
    """The whole program that probes one problem: the child part of this module, then a call."""
    return ("import json\nimport sys\n\n"
            f"CASES_PER_SITE = {CASES_PER_SITE!r}\n\n\n"
            + inspect.getsource(_probe_one) + "\n\n" + inspect.getsource(_child)
            + f"\n\n_child({json.dumps(problem)!r}, {float(timeout)!r}, {marker!r})\n")


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


def _child(problem_json: str, timeout: float, marker: str) -> None:
    row = _probe_one(json.loads(problem_json), timeout)
    sys.stdout.write(marker + json.dumps(row) + "\n")
    sys.stdout.flush()
