"""Run one function on several threads at once (the storage tests' lost-update races)."""

from __future__ import annotations

import threading


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
