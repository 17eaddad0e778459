"""Validate many functions' asserts in parallel, resumably.

Functions are packed into batches (one sandboxed runner program each, validate.py) and run on a
pool of worker threads, one warm sandbox each. Finished functions are saved in numbered part
files under the shard's work folder every few seconds, so a killed run loses only the batches in
flight and a rerun validates only functions without a saved result for the same asserts.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import secrets
import time

from multiplt import storage
from multiplt.execution.sandbox import Sandbox
from multiplt.log import progress
from multiplt.testgen.validate import Check, coverage_path, run_checks

LOG = logging.getLogger("multiplt.testgen")
# asserts per sandboxed runner program, and how often finished functions are saved (tuning
# knobs, also for tests: MULTIPLT_TESTGEN_BATCH_ASSERTS, MULTIPLT_TESTGEN_SAVE_EVERY_S)
BATCH_ASSERTS = int(os.environ.get("MULTIPLT_TESTGEN_BATCH_ASSERTS", "96"))
SAVE_EVERY_S = float(os.environ.get("MULTIPLT_TESTGEN_SAVE_EVERY_S", "10"))


def load_saved(folder: str) -> dict[str, dict]:
    saved: dict[str, dict] = {}
    if storage.exists(folder):
        for uri in sorted(storage.ls(folder)):
            if uri.endswith(".json"):
                saved.update(storage.read_json(uri))
    return saved


def _batches(checks: list[Check]) -> list[list[Check]]:
    out, current, size = [], [], 0
    for c in checks:
        if current and size + len(c.asserts) > BATCH_ASSERTS:
            out.append(current)
            current, size = [], 0
        current.append(c)
        size += len(c.asserts)
    if current:
        out.append(current)
    return out


def run_all(checks: list[Check], folder: str, *, workers: int, timeout: float,
            unsafe_no_sandbox: bool = False, private: list[str] | tuple[str, ...] = ()) -> dict:
    """Fill every check (from saved parts where they match, else by running); returns counts.
    `private`: local folders the asserts must not see (the run's own: other functions' rows,
    completions and verdicts), covered wherever they are (view.py); each must exist."""
    saved = load_saved(folder)
    todo = []
    for c in checks:
        old = saved.get(c.key)
        if old is not None and old["asserts"] == c.asserts:
            c.statuses, c.coverage = old["statuses"], old["coverage"]
        else:
            todo.append(c)
    summary = {"functions_reused": len(checks) - len(todo), "functions_run": len(todo),
               "asserts_run": sum(len(c.asserts) for c in todo), "sandbox": None, "seconds": 0.0}
    if not todo:
        return summary
    part = sum(1 for u in storage.ls(folder) if u.endswith(".json")) if storage.exists(folder) else 0
    # two validations of one shard at once (a stalled Airflow try beside its retry) count the same
    # parts: a name of this run's own keeps one's saved work from replacing the other's
    run_tag = f"{os.getpid()}-{secrets.token_hex(3)}"
    started = time.monotonic()
    sandbox = Sandbox(unsafe_no_sandbox=unsafe_no_sandbox, private=private)
    bar = progress(total=len(todo), desc="testgen validate", unit="fn")
    unsaved: list[Check] = []
    last_save = time.monotonic()

    def save() -> None:
        nonlocal part, unsaved, last_save
        if unsaved:
            storage.write_json(storage.join(folder, f"part-{part:05d}-{run_tag}.json"),
                               {c.key: {"asserts": c.asserts, "statuses": c.statuses,
                                        "coverage": c.coverage} for c in unsaved})
            part += 1
            unsaved, last_save = [], time.monotonic()

    cov_path = coverage_path(unsafe_no_sandbox)
    try:
        sandbox.check()
        summary["sandbox"] = sandbox.mode
        LOG.info("sandbox: %s", sandbox.mode)
        with concurrent.futures.ThreadPoolExecutor(
                workers, thread_name_prefix="multiplt-testgen",
                initializer=sandbox.enter_worker_thread) as pool:
            futures = {pool.submit(run_checks, sandbox, batch, timeout, cov_path=cov_path): batch
                       for batch in _batches(todo)}
            try:
                for future in concurrent.futures.as_completed(futures):
                    future.result()  # PlatformError: stop, keep what was saved
                    unsaved += futures[future]
                    bar.update(len(futures[future]))
                    if time.monotonic() - last_save > SAVE_EVERY_S:
                        save()
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
    finally:
        save()  # what finished is kept, whatever stopped the run
        bar.close()
        sandbox.close()
    summary["seconds"] = round(time.monotonic() - started, 3)
    return summary
