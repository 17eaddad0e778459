"""Shared helpers of the execution tests: which languages can run here, and which processes a
program left behind in its PID namespace."""

from __future__ import annotations

import os

import pytest

from multiplt import languages
from multiplt.execution.preflight import missing_binaries



def installed(code: str) -> bool:
    return not missing_binaries(languages.get(code))


def language_params(codes=None):
    """pytest params, one per language (default: every language of the registry); a language
    whose runtime is missing is skipped with the reason printed (Julia is not packaged by Debian)."""
    codes = languages.names() if codes is None else codes
    params = []
    for code in codes:
        missing = missing_binaries(languages.get(code))
        marks = [pytest.mark.skip(reason=f"{code}: {', '.join(missing)} not installed")] if missing else []
        params.append(pytest.param(code, marks=marks, id=code))
    return params


def processes_left_in(namespaces: set[int]) -> list[str]:
    """The live processes in these PID namespaces that this process's sandboxes left, one line
    each (pid, state, parent, command line).

    A namespace is named by its inode number, which the kernel hands out again (lowest free
    first) as soon as the namespace is gone, so another test run on this machine (the README's
    command runs two pytest processes at once) can have a sandbox in a namespace with the same
    number. Whose a namespace is shows in its ancestry: the first process above it outside the
    namespaces is this process or one of its children for a sandbox of ours (the bubblewrap that
    made it), or this process's own ancestor (init or a subreaper) once ours was orphaned; any
    other is another process tree's. A zombie whose parent is not this process is dead, holds
    nothing and is reaped by its parent, so it is not counted."""
    procs = {}  # pid -> (namespace, state, parent, command line)
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            ns = os.stat(f"/proc/{name}/ns/pid").st_ino
        except OSError:
            ns = None  # exited, or not ours to read (a machine's init can be): kept as an ancestor
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")[:200]
        except OSError:
            continue  # exited meanwhile
        procs[int(name)] = (ns, fields[0].decode(), int(fields[1]), cmd)
    me = os.getpid()

    def chain(pid):  # pid, its parent, ... while known (a pid that exited ends it)
        seen = set()
        while pid in procs and pid not in seen:
            seen.add(pid)
            yield pid
            pid = procs[pid][2]

    ancestors = set(chain(me))
    left = []
    for pid, (ns, state, parent, cmd) in procs.items():
        if ns not in namespaces or (state == "Z" and parent != me):
            continue
        above = next((p for p in chain(parent) if procs[p][0] not in namespaces), None)
        if above is None or not (above in ancestors or me in chain(above)):
            continue  # another process tree's sandbox got a number one of ours had
        left.append(f"{pid} (state {state}, parent {parent}): {cmd}")
    return left
