"""Run one function on several threads at once (the storage tests' lost-update races), and
Python's own Ctrl-C handler for tests that interrupt the main thread."""

from __future__ import annotations

import contextlib
import signal
import threading


@contextlib.contextmanager
def python_sigint():
    """SIGINT handled by Python (KeyboardInterrupt) while the block runs, as in a command:
    `_thread.interrupt_main()` does nothing where SIGINT is ignored or at its default, and an
    earlier test of the same process can leave it so (Airflow's task runner in the DAG tests)."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def run_at_once(target, threads: int) -> None:
    """Start `threads` threads running `target()`, wait for all; a thread's exception is raised."""
    errors: list[BaseException] = []

    def guarded() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            errors.append(exc)

    workers = [threading.Thread(target=guarded) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
