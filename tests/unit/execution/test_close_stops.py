"""Closing a sandbox stops the run: the programs running then are killed, and nothing starts
afterwards (no replacement warm sandbox, no new runner, no retry), for every runner. An
interrupted `execute` (Ctrl-C, SIGTERM) closes its sandbox this way and ends at once."""

from __future__ import annotations

import _thread
import threading
import time
import uuid

import pytest

from multiplt import languages
from multiplt.execution import executor, runners
from multiplt.execution.retry import run_with_retries
from multiplt.execution.sandbox import Sandbox, SandboxClosed
from tests.support.threads import python_sigint
from tests.unit.execution.helpers import installed
from tests.unit.execution.test_kill_rerun import processes_with

PY = languages.get("py")
MODES = {
    "warm": dict(warm=True),
    "per-program": dict(warm=False),
    "unsandboxed": dict(unsafe_no_sandbox=True),
}


def wait_for(condition, what: str, limit: float = 120.0) -> None:
    """Poll `condition` until it holds; a test setup that never gets there fails naming it."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def sleeper(marker: str) -> str:
    """A Python program that never ends on its own: it becomes `sleep` named `marker`."""
    return f"import os\nos.execv('/bin/bash', ['bash', '-c', 'exec -a {marker} sleep 3600'])\n"


# without the fix the program runs on: a hang, not a wrong answer; the
# thread method ends even a main thread stuck in a wait
@pytest.mark.timeout(180, method="thread")
@pytest.mark.parametrize("mode", list(MODES))
def test_close_kills_the_running_program_and_starts_no_replacement(mode, monkeypatch):
    started = []  # every warm sandbox started (a replacement after close() would add one)

    class Counted(runners.WarmSandbox):
        def __init__(self, *args, **kwargs):
            started.append(self)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(runners, "WarmSandbox", Counted)
    marker = f"multiplt-close-{uuid.uuid4().hex[:8]}"
    sandbox = Sandbox(**MODES[mode])
    sandbox.check()
    outcome = []

    def worker():
        try:
            outcome.append(run_with_retries(sandbox, PY, sleeper(marker), 3600))
        except BaseException as exc:  # noqa: BLE001 (the test reports it)
            outcome.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    wait_for(lambda: processes_with(marker), "the program started")
    before = len(started)
    sandbox.close()
    thread.join()  # the program never ends on its own: the worker returns once close() killed it
    assert processes_with(marker) == [], "close() left the program running"
    assert len(outcome) == 1 and isinstance(outcome[0], SandboxClosed), outcome
    assert len(started) == before, "a warm sandbox was started after close()"
    assert sandbox.runner is None


@pytest.mark.parametrize("mode", list(MODES))
def test_a_closed_sandbox_runs_nothing(mode, monkeypatch):
    """A worker's next program, a retry or a warm-up after close() raises SandboxClosed: no new
    runner (its compiled init, its temp folder) is made for it."""
    made = []
    real = Sandbox._warm_runner

    def counted(self):
        made.append(self)
        return real(self)

    monkeypatch.setattr(Sandbox, "_warm_runner", counted)
    sandbox = Sandbox(**MODES[mode])
    assert run_with_retries(sandbox, PY, "print(1)", 30).stdout == "1\n"
    sandbox.close()
    calls = len(made)
    with pytest.raises(SandboxClosed):
        run_with_retries(sandbox, PY, "print(1)", 30)
    with pytest.raises(SandboxClosed):
        sandbox.warm_up([PY])
    with pytest.raises(SandboxClosed):
        sandbox.check()
    assert len(made) == calls and sandbox.runner is None


# without the fix the wait runs its full hour: a hang; the
# thread method ends even a main thread stuck in a wait
@pytest.mark.timeout(180, method="thread")
def test_a_retry_wait_ends_when_the_sandbox_closes(monkeypatch):
    """A platform failure's retry waits (BACKOFF_S, doubling); closing the sandbox meanwhile
    ends the wait with SandboxClosed rather than another try."""
    from multiplt.errors import PlatformError
    from multiplt.execution import retry

    monkeypatch.setattr(retry, "BACKOFF_S", 3600.0)
    sandbox = Sandbox(unsafe_no_sandbox=True)
    tries = []

    def broken(self, lang, program, timeout):
        tries.append(program)
        raise PlatformError("warm sandbox exited; exit code -2")  # as after a Ctrl-C to the group

    monkeypatch.setattr(Sandbox, "run", broken)
    outcome = []

    def worker():
        try:
            run_with_retries(sandbox, PY, "print(1)", 30)
        except BaseException as exc:  # noqa: BLE001 (the test reports it)
            outcome.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    wait_for(lambda: tries, "the first try")
    sandbox.close()
    thread.join()
    assert len(tries) == 1 and isinstance(outcome[0], SandboxClosed), (tries, outcome)


def interrupt_when(condition, finished: threading.Event) -> threading.Thread:
    """A thread that raises KeyboardInterrupt in the main thread once `condition` holds, as a
    Ctrl-C or SIGTERM handled by another thread does (a C library's SIGINT handler installed
    with SA_RESTART: the main thread's wait is not cut short, only its next wake sees it)."""
    def run():
        deadline = time.monotonic() + 120
        while not finished.is_set() and time.monotonic() < deadline:
            if condition():
                _thread.interrupt_main()
                return
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# without the fix the main thread waits for the program: a hang; the
# thread method ends even a main thread stuck in a wait
@pytest.mark.timeout(180, method="thread")
@pytest.mark.skipif(not installed("lua"), reason="lua5.4 not installed")
def test_interrupted_execute_kills_what_runs_and_keeps_what_finished(tmp_path):
    import gzip
    import json

    from multiplt.execution import files

    marker = f"multiplt-exec-{uuid.uuid4().hex[:8]}"
    slow = f"os.execute(\"bash -c 'exec -a {marker} sleep 3600'\")\n"
    fast = "print(1)\n"
    doc = {"name": "P", "language": "lua", "prompt": "", "tests": "", "completions": [slow, fast],
           "stop_tokens": [], "temperature": 0.2, "top_p": 0.95, "max_tokens": 512}
    with gzip.open(tmp_path / "P.json.gz", "wt") as f:
        json.dump(doc, f)

    def fast_saved():
        try:
            with gzip.open(tmp_path / "P.results.json.gz", "rt") as f:
                return "1" in json.load(f).get(files.PENDING_KEY, {})
        except (OSError, ValueError):
            return False

    finished = threading.Event()
    with python_sigint():
        interrupt_when(lambda: processes_with(marker) and fast_saved(), finished)
        try:
            with pytest.raises(KeyboardInterrupt):
                executor.execute(str(tmp_path), workers=2, timeout=3600)
        finally:
            finished.set()
    assert processes_with(marker) == [], "the interrupted execute left its program running"
    with gzip.open(tmp_path / "P.results.json.gz", "rt") as f:
        kept = json.load(f)
    assert kept["results"] == [] and kept[files.PENDING_KEY]["1"]["status"] == "OK"
