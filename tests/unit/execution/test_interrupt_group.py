"""A Ctrl-C in a terminal goes to the executor's whole process group (so does a task runner's
SIGTERM to the group). The sandboxes must not get it: a bubblewrap killed by it ended its program
with exit code -2 before the executor had closed the sandbox, and the interrupted run saved that
as the program's result (status Exception), which the rerun then kept. Now every sandbox starts
in a session of its own, only the executor kills it, a bubblewrap killed by a signal the run did
not send is a platform failure (never a result), and closing the sandbox leaves none of its
processes behind, even where bubblewrap died before its namespace's init."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from multiplt import languages
from multiplt.errors import PlatformError
from multiplt.execution import bwrap, files, runners
from multiplt.execution.retry import run_with_retries
from multiplt.execution.sandbox import Limits, Sandbox, SandboxClosed
from tests.unit.execution.helpers import installed
from tests.unit.execution.test_close_stops import MODES, sleeper, wait_for
from tests.unit.execution.test_kill_rerun import processes_with

PY = languages.get("py")
LUA = languages.get("lua")
ROOT = Path(__file__).resolve().parents[3]


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat's fields after the command name (state, ppid, pgrp, session, ...)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].decode().split()
    except OSError:
        return None


def _descendants_in_my_group() -> list[int]:
    """This process's descendants that are in its process group (what a Ctrl-C to the group
    would reach besides the executor itself)."""
    parents = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        fields = _stat(int(entry))
        if fields is not None:
            parents[int(entry)] = (int(fields[1]), int(fields[2]))
    mine, group = {os.getpid()}, os.getpgrp()
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in parents.items():
            if ppid in mine and pid not in mine:
                mine.add(pid)
                grew = True
    return sorted(pid for pid in mine - {os.getpid()} if parents.get(pid, (0, 0))[1] == group)


def _run_in_thread(fn) -> tuple[threading.Thread, list]:
    outcome: list = []

    def worker():
        try:
            outcome.append(fn())
        except BaseException as exc:  # noqa: BLE001 (the test reports it)
            outcome.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    return thread, outcome


# without the fix nothing hangs; the limit is a guard against a broken setup
@pytest.mark.timeout(180, method="thread")
@pytest.mark.parametrize("mode", list(MODES))
def test_no_process_of_a_running_program_is_in_the_executors_process_group(mode):
    marker = f"multiplt-group-{uuid.uuid4().hex[:8]}"
    # what earlier tests of the session left in the group (a moto server, ...) is not this run's
    before = set(_descendants_in_my_group())
    with Sandbox(**MODES[mode]) as sandbox:
        sandbox.check()
        thread, outcome = _run_in_thread(lambda: run_with_retries(sandbox, PY, sleeper(marker), 3600))
        wait_for(lambda: processes_with(marker), "the program started")
        in_group = [(pid, _cmdline(pid)) for pid in _descendants_in_my_group() if pid not in before]
        sandbox.close()
        thread.join()
    assert in_group == [], "a Ctrl-C to the executor's process group would reach these"
    assert isinstance(outcome[0], SandboxClosed), outcome


@pytest.mark.timeout(180, method="thread")
def test_a_bubblewrap_killed_by_a_signal_the_run_did_not_send_gives_no_result():
    """bubblewrap reports a program killed by signal N as exit code 128 + N; a negative code is
    bubblewrap itself killed (here by a SIGKILL sent to it by hand: a signal that no disposition
    or mask inherited from the test process can hold back): a platform failure, which
    run_with_retries retries, never the program's result."""
    marker = f"multiplt-foreign-{uuid.uuid4().hex[:8]}"
    earlier = set(_children())  # a sandbox an earlier test of the session still holds is not this one
    with Sandbox(warm=False) as sandbox:
        sandbox.check()
        thread, outcome = _run_in_thread(lambda: sandbox.run(PY, sleeper(marker), 3600))
        wait_for(lambda: processes_with(marker), "the program started")
        outer = [pid for pid in _children() if _comm(pid) == "bwrap" and pid not in earlier]
        assert len(outer) == 1, outer
        os.kill(outer[0], signal.SIGKILL)
        thread.join(60)
        ended = not thread.is_alive()
        if not ended:  # unblock the run (close kills the sandbox) so that the failure is reported
            sandbox.close()
            thread.join()
    assert ended, "the run went on after its bubblewrap was killed"
    assert len(outcome) == 1 and isinstance(outcome[0], PlatformError) \
        and not isinstance(outcome[0], SandboxClosed), outcome
    assert "killed by signal 9 (SIGKILL)" in str(outcome[0])


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()[:80]
    except OSError:
        return b""


def _children() -> list[int]:
    return [int(p) for p in filter(str.isdigit, os.listdir("/proc"))
            if (_stat(int(p)) or [0, 0])[1] == str(os.getpid())]


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


@pytest.mark.timeout(180, method="thread")
def test_close_kills_what_a_bubblewrap_that_died_first_left_behind(monkeypatch):
    """A bubblewrap that dies after cloning its namespace's init but before letting it go on
    (killed by a signal) leaves that init waiting for ever, holding the program's pipes. Here a
    stand-in for bubblewrap exits at once and leaves a child of its process group behind,
    holding those pipes: close() must kill it, though the process it started is already gone."""
    marker = f"multiplt-left-{uuid.uuid4().hex[:8]}"
    stand_in = ["bash", "-c", '(exec -a "$0-left" sleep 3600) & exit 0', marker]
    monkeypatch.setattr(bwrap, "command_line", lambda *args, **kwargs: stand_in)
    runner = runners.BwrapRunner(Limits(), lambda fn, *args: fn(*args))
    thread, outcome = _run_in_thread(lambda: runner.run(LUA, "print(1)\n", "p.lua", 3600, None))
    # the stand-in has exited (its command line, which names the marker, is gone), its child runs
    wait_for(lambda: processes_with(marker) == processes_with(f"{marker}-left") != [],
             "the stand-in exited, leaving its child")
    runner.close()
    try:  # without the fix it runs on: the wait fails
        wait_for(lambda: not processes_with(f"{marker}-left"), "close() killed the left process")
    finally:
        for pid in processes_with(f"{marker}-left"):  # the test's own leftover, in any case
            os.kill(int(pid), signal.SIGKILL)
        thread.join()
    assert isinstance(outcome[0], SandboxClosed), outcome


CHILD = r'''
import os, signal, sys, threading, time
sys.path.insert(0, sys.argv[1])
folder, marker, slow = sys.argv[2], sys.argv[3], int(sys.argv[4])
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
from multiplt import cli
from multiplt.execution import executor
from multiplt.execution.sandbox import Sandbox
Sandbox._warm_runner = lambda self: None  # one bubblewrap per program
executor.SAVE_EVERY_S = 0  # each batch written at once: the fast program's result first

def running():
    """How many of the slow programs' `sleep`s run (their command line starts with the marker)."""
    count = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                count += f.read().startswith(marker.encode() + b"-")
        except OSError:
            pass
    return count

reported, lock = [], threading.Lock()
r, w = os.pipe()
real_reported = executor._run_reported
def run_reported(sandbox, job, timeout, finished, arrived):
    real_reported(sandbox, job, timeout, finished, arrived)
    if marker in job.program:
        with lock:
            reported.append(job)
            if len(reported) == slow:
                os.write(w, b"x")
executor._run_reported = run_reported

real_write, writes = executor._Problem.write, []
def write(self):
    writes.append(self)
    if len(writes) == 1:  # the fast program's result; the slow ones run now
        while running() < slow:
            time.sleep(0.02)
        # The main thread sees the Ctrl-C only once every slow program has reported, as when
        # it is busy in a long write: a program killed by it has reported by then.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        os.killpg(0, signal.SIGINT)  # a terminal's Ctrl-C: the whole process group
        os.read(r, 1)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    real_write(self)
executor._Problem.write = write
sys.exit(cli.main(["execute", "--in", folder, "--workers", str(slow + 1), "--timeout", "600"]))
'''


@pytest.mark.timeout(300, method="thread")
@pytest.mark.skipif(not installed("lua"), reason="lua5.4 not installed")
def test_a_ctrl_c_to_the_process_group_saves_no_killed_program_as_a_result(tmp_path):
    """The reviewer's case, made certain: one bubblewrap per program, the Ctrl-C sent to the
    executor's whole process group while slow programs run, the main thread seeing it only once
    those programs have reported. They were never hit by it: each ran to its end, and its real
    result is saved (without the fix each was killed with its bubblewrap and saved as status
    Exception, exit code -2, and the rerun kept that)."""
    slow = 2
    marker = f"multiplt-ctrlc-{uuid.uuid4().hex[:8]}"
    completions = ["print(1)\n"] + [f"os.execute(\"bash -c 'exec -a {marker}-{i} sleep 2'\")\n"
                                    "print('slow')\n" for i in range(slow)]
    doc = {"name": "P", "language": "lua", "prompt": "", "tests": "", "completions": completions,
           "stop_tokens": [], "temperature": 0.2, "top_p": 0.95, "max_tokens": 512}
    with gzip.open(tmp_path / "P.json.gz", "wt") as f:
        json.dump(doc, f)
    child = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(tmp_path), marker, str(slow)],
                           cwd=ROOT, start_new_session=True, capture_output=True, text=True,
                           timeout=240)
    assert child.returncode == 130, child.stderr[-3000:]
    with gzip.open(tmp_path / "P.results.json.gz", "rt") as f:
        saved = json.load(f)
    found = {int(i): r for i, r in saved.get(files.PENDING_KEY, {}).items()}
    found.update(enumerate(saved["results"]))
    assert {i: (r["status"], r["exit_code"], r["stdout"]) for i, r in found.items()} == \
        {0: ("OK", 0, "1\n"), **{i: ("OK", 0, "slow\n") for i in range(1, slow + 1)}}
