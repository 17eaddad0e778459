"""How an interrupted or failing `execute` ends: it writes what had finished and returns, whatever
else goes wrong on the way out.

- A Ctrl-C right after the folder's lock was taken leaves no lock behind (before, the locked
  descriptor stayed open, and the run's own last write waited for it for ever), and the last
  write waits for the folder's lock a bounded time (SAVE_LOCK_WAIT_S), then gives up with a
  warning: the rerun runs those programs again.
- A worker thread that cannot start (its initializer fails: the pool is broken) fails the run
  at once rather than leaving it waiting for results that never come.
- A second Ctrl-C while the sandbox closes still writes what had finished, and a program that
  finished before the close but was reported just after it is written too (SETTLE_S)."""

from __future__ import annotations

import concurrent.futures
import fcntl
import gzip
import json
import logging
import os
import threading

import pytest

from multiplt import storage
from multiplt.execution import executor
from multiplt.execution.sandbox import Sandbox
from multiplt.generation import folder as generation_folder
from tests.unit.execution.test_interrupt_keeps_finished import saved_results
from tests.unit.execution.helpers import installed
from tests.support.locks import lock_is_free

needs_lua = pytest.mark.skipif(not installed("lua"), reason="lua5.4 not installed")


def _problem(path, completions, name="P0"):
    doc = {"name": name, "language": "lua", "prompt": "", "tests": "", "completions": completions,
           "stop_tokens": [], "temperature": 0.2, "top_p": 0.95, "max_tokens": 512}
    with gzip.open(path / f"{name}.json.gz", "wt") as f:
        json.dump(doc, f)




def _interrupt_after_flock(monkeypatch, path, then=None):
    """A KeyboardInterrupt raised right after the first flock of `path` returns, as a Ctrl-C
    pending then is raised at the next Python instruction; `then(fd)` runs first."""
    real = fcntl.flock
    calls = []

    def flock(fd, operation):
        real(fd, operation)
        number = fd if isinstance(fd, int) else fd.fileno()
        if os.readlink(f"/proc/self/fd/{number}") == os.path.realpath(path) and not calls:
            calls.append(fd)
            if then is not None:
                then(fd)
            raise KeyboardInterrupt

    monkeypatch.setattr(fcntl, "flock", flock)
    return calls


# ---- the folder's lock ---------------------------------------------------------------------

def test_a_ctrl_c_right_after_the_lock_is_taken_leaves_no_lock(tmp_path, monkeypatch):
    calls = _interrupt_after_flock(monkeypatch, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with generation_folder.locked(str(tmp_path)):
            pass
    monkeypatch.undo()
    assert calls, "the lock was never taken"
    assert lock_is_free(tmp_path), "the interrupted lock was left held"


def test_a_lock_with_a_timeout_gives_up(tmp_path):
    with storage.FolderLock(str(tmp_path)) as held:
        assert held is not None and not lock_is_free(tmp_path)
        with pytest.raises(BlockingIOError):
            with storage.FolderLock(str(tmp_path), timeout=0.1):
                pass
        with pytest.raises(BlockingIOError):
            storage.FolderLock(str(tmp_path), timeout=0).__enter__()
    assert lock_is_free(tmp_path)


# without the fix the interrupted run waits for its own lock: a hang; the thread method ends
# even a main thread stuck in a wait
@pytest.mark.timeout(180, method="thread")
@needs_lua
def test_a_ctrl_c_right_after_the_folders_lock_was_taken_still_ends_and_saves(tmp_path, monkeypatch):
    _problem(tmp_path, ["print(1)\n", "print(2)\n"])
    calls = _interrupt_after_flock(monkeypatch, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        executor.execute(str(tmp_path), workers=1, unsafe_no_sandbox=True)
    monkeypatch.undo()
    assert calls, "the folder's lock was never taken"
    assert saved_results(tmp_path)[0]["stdout"] == "1\n"  # the finished result the write was for
    assert lock_is_free(tmp_path)


@pytest.mark.timeout(180, method="thread")
@needs_lua
def test_an_interrupted_run_waits_for_a_held_lock_a_bounded_time(tmp_path, monkeypatch, caplog):
    """The folder's lock stays held on another descriptor (another execute writing, or one this
    process lost): the interrupted run's last write gives up after SAVE_LOCK_WAIT_S, says so,
    and the run ends with its interruption."""
    _problem(tmp_path, ["print(1)\n", "print(2)\n"])
    held = []
    _interrupt_after_flock(monkeypatch, tmp_path, then=lambda fd: held.append(os.dup(fd)))
    monkeypatch.setattr(executor, "SAVE_LOCK_WAIT_S", 0.2)
    try:
        with caplog.at_level(logging.WARNING, logger="multiplt.execution"):
            with pytest.raises(KeyboardInterrupt):
                executor.execute(str(tmp_path), workers=1, unsafe_no_sandbox=True)
    finally:
        for fd in held:
            os.close(fd)
    assert held and saved_results(tmp_path) == {}
    assert "folder stayed locked" in caplog.text


# ---- a worker that cannot start --------------------------------------------------------------

# without the fix the main thread waits for ever for results: a hang
@pytest.mark.timeout(180, method="thread")
@needs_lua
@pytest.mark.parametrize("workers", [1, 2])
def test_a_worker_thread_that_cannot_start_fails_the_run(tmp_path, monkeypatch, workers):
    _problem(tmp_path, ["print(1)\n", "print(2)\n", "print(3)\n"])

    def refuse(self):
        raise OSError(1, "dropping the thread to uid 65534: Operation not permitted")

    monkeypatch.setattr(Sandbox, "enter_worker_thread", refuse)
    with pytest.raises(concurrent.futures.BrokenExecutor):
        executor.execute(str(tmp_path), workers=workers, unsafe_no_sandbox=True)


# ---- the way out -----------------------------------------------------------------------------

@pytest.mark.timeout(180, method="thread")
@needs_lua
def test_a_second_ctrl_c_while_the_sandbox_closes_still_saves(tmp_path, monkeypatch):
    _problem(tmp_path, ["print(1)\n", "print(2)\n", "print(3)\n"])
    real_write, real_close = executor._Problem.write, Sandbox.close
    asked = []

    def write(self):
        if not asked:  # the first Ctrl-C: just before the first batch is written
            asked.append({i: r for i, r in enumerate(self.results) if r is not None})
            raise KeyboardInterrupt
        real_write(self)

    def close(self):
        real_close(self)
        if len(asked) == 1:  # the second Ctrl-C, while the sandbox closes
            asked.append(None)
            raise KeyboardInterrupt

    monkeypatch.setattr(executor._Problem, "write", write)
    monkeypatch.setattr(Sandbox, "close", close)
    monkeypatch.setattr(executor, "SAVE_EVERY_S", 0)  # each batch written at once
    with pytest.raises(KeyboardInterrupt):
        executor.execute(str(tmp_path), workers=1, unsafe_no_sandbox=True)
    monkeypatch.undo()
    assert len(asked) == 2 and asked[0], "the interruptions came at the wrong time"
    saved = saved_results(tmp_path)
    assert {i: saved.get(i) for i in asked[0]} == asked[0]


@pytest.mark.timeout(180, method="thread")
@needs_lua
def test_a_program_reported_just_after_the_close_is_saved(tmp_path, monkeypatch, caplog):
    """A program that finished before the sandbox closed, its worker reporting it just after
    (here 0.3 s after): the interrupted run waits for the workers (SETTLE_S, raised here to an
    hour so that a slow machine cannot fail the test) and writes it. The jobs left in the queue
    are cancelled: never waited for (they never run: waiting for them would take the hour), and
    not failed ones (no error from their done callbacks)."""
    _problem(tmp_path, [f"print({i})\n" for i in range(1, 20)])
    monkeypatch.setattr(executor, "SETTLE_S", 3600.0)
    real_run, real_write = executor._run_job, executor._Problem.write
    late_done = threading.Event()
    asked = []

    def run_job(sandbox, job, timeout):
        if not job.program.startswith(("print(1)", "print(2)")):
            sandbox.wait_closed(120)  # the others start only once the run stops (SandboxClosed)
        record = real_run(sandbox, job, timeout)
        if job.program.startswith("print(2)"):
            late_done.set()
            sandbox.wait_closed(120)  # finished; reported only once the sandbox has closed
            threading.Event().wait(0.3)
        return record

    def write(self):
        if not asked:  # print(1)'s result
            late_done.wait(120)  # print(2) has finished too: the Ctrl-C comes now
            asked.append(True)
            raise KeyboardInterrupt
        real_write(self)

    monkeypatch.setattr(executor, "_run_job", run_job)
    monkeypatch.setattr(executor._Problem, "write", write)
    monkeypatch.setattr(executor, "SAVE_EVERY_S", 0)  # print(1)'s result written at once
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(KeyboardInterrupt):
            executor.execute(str(tmp_path), workers=2, unsafe_no_sandbox=True)
    monkeypatch.undo()
    saved = saved_results(tmp_path)
    assert {i: r["stdout"] for i, r in saved.items()} == {0: "1\n", 1: "2\n"}
    assert "exception calling callback" not in caplog.text
