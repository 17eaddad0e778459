"""Validate many functions' asserts in parallel, resumably.

Functions are packed into batches (one sandboxed runner program each, validate.py) and run on a
pool of worker threads, one warm sandbox each. Finished functions are saved in numbered part
files under the shard's work folder every few seconds, so a killed run loses only the batches in
flight and a rerun validates only functions without a saved result for the same asserts under the same
validation rules (config.VALIDATION). A run
stopped by Ctrl-C or SIGTERM kills the batches in flight at once (closing the sandbox) and
saves every batch that had finished before it ends.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import secrets
import time

from multiplt import storage
from multiplt.execution.executor import WAKE_S  # the main thread wakes that often while batches run
from multiplt.execution.sandbox import Sandbox
from multiplt.log import progress
from multiplt.testgen.config import VALIDATION
from multiplt.testgen.validate import Check, coverage_path, run_checks

LOG = logging.getLogger("multiplt.testgen")
# asserts per sandboxed runner program, and how often finished functions are saved, in seconds
# (tuning knobs, also for tests): these defaults, or the environment's (tuning)
BATCH_ASSERTS = 96
SAVE_EVERY_S = 10.0
BATCH_ASSERTS_ENV = "MULTIPLT_TESTGEN_BATCH_ASSERTS"
SAVE_EVERY_ENV = "MULTIPLT_TESTGEN_SAVE_EVERY_S"


def tuning() -> tuple[int, float]:
    """(asserts per batch, seconds between saves): MULTIPLT_TESTGEN_BATCH_ASSERTS (a positive
    integer) and MULTIPLT_TESTGEN_SAVE_EVERY_S (a number of seconds, 0 or more: 0 saves at every
    wake-up) where set, else BATCH_ASSERTS and SAVE_EVERY_S (an empty value counts as unset).
    Anything else is a MultipltError naming the variable; run_all asks before it runs anything."""
    from multiplt.env_setting import env_setting

    batch = env_setting(BATCH_ASSERTS_ENV, int, lambda n: n >= 1,
                        "a positive integer (asserts per sandboxed program)")
    every = env_setting(SAVE_EVERY_ENV, float, lambda s: 0 <= s < float("inf"),
                        "a number of seconds, 0 or more (how often finished functions are saved)")
    batch = BATCH_ASSERTS if batch is None else batch
    every = SAVE_EVERY_S if every is None else every
    return batch, every


def load_saved(folder: str) -> dict[str, dict]:
    saved: dict[str, dict] = {}
    if storage.exists(folder):
        for uri in sorted(storage.ls(folder)):
            if uri.endswith(".json"):
                saved.update(storage.read_json(uri))
    return saved


def _batches(checks: list[Check], batch_asserts: int) -> list[list[Check]]:
    out, current, size = [], [], 0
    for c in checks:
        if current and size + len(c.asserts) > batch_asserts:
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
    batch_asserts, save_every_s = tuning()
    saved = load_saved(folder)
    todo = []
    for c in checks:
        old = saved.get(c.key)
        # a part saved under other validation rules (none recorded: before version 2) is not
        # reused: its verdicts and coverage would mix with this version's
        if old is not None and old["asserts"] == c.asserts and old.get("validation") == VALIDATION:
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
                                        "coverage": c.coverage, "validation": VALIDATION}
                                for c in unsaved})
            part += 1
            unsaved, last_save = [], time.monotonic()

    cov_path = coverage_path(unsafe_no_sandbox)
    try:
        sandbox.check()
        summary["sandbox"] = sandbox.mode
        LOG.info("sandbox: %s", sandbox.mode)
        pool = concurrent.futures.ThreadPoolExecutor(
            workers, thread_name_prefix="multiplt-testgen", initializer=sandbox.enter_worker_thread)
        futures = {pool.submit(run_checks, sandbox, batch, timeout, cov_path=cov_path): batch
                   for batch in _batches(todo, batch_asserts)}
        kept: set[concurrent.futures.Future] = set()

        def keep(future: concurrent.futures.Future) -> None:
            nonlocal unsaved
            kept.add(future)
            unsaved += futures[future]
            bar.update(len(futures[future]))

        try:
            running = set(futures)
            while running:
                done, running = concurrent.futures.wait(
                    running, timeout=WAKE_S, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    future.result()  # PlatformError: stop, keep what was saved
                    keep(future)
                if time.monotonic() - last_save > save_every_s:
                    save()
        except BaseException:
            # Stop now (Ctrl-C, SIGTERM, a platform failure): queued batches never start, and
            # closing the sandbox kills the running ones (their runners get SandboxClosed), so
            # the workers end at once rather than when their batches would have; a batch that
            # finished meanwhile is kept (saved below), the killed ones run again next time.
            pool.shutdown(wait=False, cancel_futures=True)
            sandbox.close()
            pool.shutdown(wait=True)
            for future in futures:
                if future not in kept and future.done() and not future.cancelled() \
                        and future.exception() is None:
                    keep(future)
            raise
        pool.shutdown()
    finally:
        save()  # what finished is kept, whatever stopped the run
        bar.close()
        sandbox.close()
    summary["seconds"] = round(time.monotonic() - started, 3)
    return summary
