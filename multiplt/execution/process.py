"""Run one command with a wall-clock limit and bounded output, waiting on it rather than polling.

The caller's thread blocks in `select` on the child's stdout, stderr and (for bubblewrap) its
status pipe, so it wakes exactly when the child writes, exits or runs out of time. Each stream
keeps at most `output_limit` bytes but is drained to the end, so a chatty program can never stall
on a full pipe. At the deadline `kill` takes down the whole process tree (for the sandbox: its
PID namespace), and the result says `timed_out`. With a memory cap, the waiting thread also sums
the resident memory of the process tree, and the memory files it holds open, every few tens of
milliseconds (zygote.MemoryWatch, the same code a warm sandbox's supervisor runs) and kills it
the same way once the sum is over the cap: the result says `memory_exceeded`, exit code 137,
and stderr ends with a line saying so.
"""

from __future__ import annotations

import dataclasses
import json
import os
import selectors
import signal
import subprocess
import time
from typing import Callable

from multiplt.execution import zygote

_CHUNK = 1 << 16
# After a kill, how long to wait for the pipes to close (every holder is dead by then).
_KILL_GRACE_S = 2.0


@dataclasses.dataclass
class Finished:
    """What one run produced. `exit_code` is -1 on a timeout (as MultiPL-E's runner reports),
    137 (128 + SIGKILL) where the program was killed for holding more memory than its cap
    (`memory_exceeded`; stderr then ends with a `sandbox: killed for exceeding the memory cap`
    line)."""

    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool
    duration: float
    #: bubblewrap's report: {"child-pid": ..., "pid-namespace": ..., ...}; empty without a sandbox
    sandbox_info: dict = dataclasses.field(default_factory=dict)
    #: killed because its processes held more resident memory together than `Limits.memory`
    memory_exceeded: bool = False


class _Stream:
    """Bytes of one pipe: keeps the first `limit`, counts (and drops) the rest."""

    def __init__(self, limit: int):
        self.limit = limit
        self.kept = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.limit - len(self.kept)
        if room > 0:
            self.kept += data[:room]
        self.dropped += max(0, len(data) - max(room, 0))

    def text(self) -> str:
        return self.kept.decode("utf-8", errors="replace")


def run_bounded(argv: list[str], *, timeout: float, output_limit: int,
                status_fd: int | None = None,
                on_start: Callable[[dict, subprocess.Popen], None] | None = None,
                close_after_spawn: tuple[int, ...] = (), new_session: bool = False,
                kill: Callable[[subprocess.Popen, dict], None] | None = None,
                memory: int | None = None,
                memory_root: Callable[[subprocess.Popen, dict], tuple[int, bool]] | None = None,
                on_spawn: Callable[[subprocess.Popen], None] | None = None,
                **popen_kwargs) -> Finished:
    """Run `argv` with stdin closed; return its exit code and (truncated) output.

    `status_fd` is the read end of bubblewrap's --json-status-fd pipe (this function closes it);
    `on_start(info, proc)` is called with bubblewrap's first status report (its child's pid),
    before the program can start;
    `close_after_spawn` are our copies of fds the child inherited (e.g. that pipe's write end),
    closed as soon as it started so that the pipe's end of file means the child's exit;
    `kill(proc, sandbox_info)` ends the run at the deadline (default: SIGKILL to the process group
    when `new_session`, else to the process);
    `memory`: the cap in bytes on the resident memory of the processes below (and with it
    including) the pid that `memory_root(proc, sandbox_info)` returns as (pid, include_it)
    (default: the child and all its descendants); over it, `kill` ends the run too;
    `on_spawn(proc)` is called as soon as the child exists (a runner keeps it, to kill it when
    the run stops: the run then ends as the killed child's pipes close).
    """
    start = time.monotonic()
    deadline = start + timeout
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=new_session,
                                **popen_kwargs)
    except BaseException:
        if status_fd is not None:
            os.close(status_fd)
        raise
    finally:
        for fd in close_after_spawn:
            os.close(fd)
    out, err = _Stream(output_limit), _Stream(output_limit)
    info: dict = {}
    status_buf = bytearray()
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ, out)
    selector.register(proc.stderr, selectors.EVENT_READ, err)
    status_file = None
    if status_fd is not None:
        status_file = os.fdopen(status_fd, "rb", buffering=0)
        selector.register(status_file, selectors.EVENT_READ, None)
    timed_out = False
    watch = zygote.MemoryWatch(memory) if memory else None
    root = memory_root or (lambda proc, info: (proc.pid, True))

    def over_cap(now: float) -> bool:
        return watch is not None and now >= watch.due and watch.over(*root(proc, info))

    def next_wake() -> float:
        return deadline if watch is None else min(deadline, watch.due)

    over = False
    try:
        if on_spawn is not None:
            on_spawn(proc)
        # Phase 1: read until every pipe is closed, time runs out or memory is over the cap.
        while selector.get_map():
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            if over_cap(now):
                over = True
                break
            for key, _ in selector.select(max(0.0, next_wake() - now)):
                data = os.read(key.fileobj.fileno(), _CHUNK)
                if not data:
                    selector.unregister(key.fileobj)
                elif key.data is None:
                    status_buf += data
                    if not info:
                        info = _first_json(status_buf)
                        if info and on_start is not None:
                            on_start(info, proc)
                else:
                    key.data.add(data)
        # Phase 2: the pipes are closed (or we gave up on them); wait for the exit itself.
        while not (timed_out or over):
            try:
                proc.wait(max(0.0, next_wake() - time.monotonic()))
                break
            except subprocess.TimeoutExpired:
                now = time.monotonic()
                timed_out = now >= deadline
                over = not timed_out and over_cap(now)
        if timed_out or over:
            (kill or _default_kill(new_session))(proc, info)
            grace = time.monotonic() + _KILL_GRACE_S
            _drain_after_kill(selector, grace)
            try:
                proc.wait(max(0.0, grace - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        elif new_session:
            kill_group(proc.pid)  # leftovers of a run that exited (its group: its own session)
    except BaseException:
        # Never leave a child behind, whatever went wrong here (KeyboardInterrupt included).
        (kill or _default_kill(new_session))(proc, info)
        proc.wait()
        raise
    finally:
        selector.close()
        proc.stdout.close()
        proc.stderr.close()
        if status_file is not None:
            status_file.close()
    return Finished(
        exit_code=-1 if timed_out else 128 + signal.SIGKILL if over else proc.returncode,
        stdout=out.text(), stderr=err.text() + (watch.message() if over else ""),
        timed_out=timed_out, duration=time.monotonic() - start, sandbox_info=info,
        memory_exceeded=over)


def _first_json(buf: bytearray) -> dict:
    """The first complete JSON document bubblewrap wrote to its status pipe, or {}."""
    line, sep, _ = bytes(buf).partition(b"\n")
    if not sep:
        return {}
    try:
        return json.loads(line)
    except ValueError:
        return {}


def _drain_after_kill(selector: selectors.BaseSelector, until: float) -> None:
    while selector.get_map():
        remaining = until - time.monotonic()
        if remaining <= 0:
            return
        events = selector.select(remaining)
        if not events:
            return
        for key, _ in events:
            data = os.read(key.fileobj.fileno(), _CHUNK)
            if not data:
                selector.unregister(key.fileobj)
            elif key.data is not None:
                key.data.add(data)


def kill_group(pgid: int) -> None:
    """SIGKILL to the process group `pgid` (gone already: nothing)."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _default_kill(new_session: bool) -> Callable[[subprocess.Popen, dict], None]:
    def kill(proc: subprocess.Popen, info: dict) -> None:
        if new_session:
            kill_group(proc.pid)
        else:
            proc.kill()
    return kill
