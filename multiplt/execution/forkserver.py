"""Pre-loaded runtimes: each warm sandbox keeps, per language, one process that has loaded the
runtime and its test library and forks every program from it (zygote.py runs them, init.c in
fork-server mode does the forking).

Why: a program's own work is milliseconds; a fresh `racket` spends about 0.4 s loading `racket`
and `rackunit` first. A fork of a runtime that has done so starts where that work ends.

Isolation is the per-program init's, step for step: the server clones pid 1 into new mount,
IPC and PID namespaces (and waits for it, as the init's helper does); pid 1 mounts the fresh /tmp and /proc, empties every
capability set and sets the limits, then forks the program (pid 2, own session, stdin
/dev/null). The only difference is that pid 2 returns into the loaded runtime instead of
exec'ing a new one. The server runs no program code: what a program changes in its copy of the
runtime (a redefined library function, a thread left running, the current directory, the
environment) is gone when its namespace is, and the next program is a fresh fork of the
untouched server. Nor can a program write into the server: pid 1 (which in shared-init mode
runs on the server's own memory) and the server are not dumpable, so no process of the
program's uid may open their /proc/PID/mem or trace them (init.c); the program itself is
dumpable again in its own copy.

A language opts in with `Language.fork_server` (its module holds the runtime-specific code); the
batch builds the shared library once (native.py) and asks each language for its server's argv.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile

from multiplt.execution import native
from multiplt.languages.base import Language

LOG = logging.getLogger("multiplt.execution")


def library(root: str) -> str | None:
    """The fork servers' shared library, built into `root` (None where it cannot be built)."""
    path = os.path.join(root, native.FORK_LIBRARY)
    if os.path.exists(path):
        return path
    return native.build(root, native.FORK_LIBRARY)


def build(lang: Language, root: str) -> list[str] | None:
    """The argv of `lang`'s pre-loaded runtime (its files under `root`), or None: a fresh
    interpreter per program (the language has none, or it cannot be set up here)."""
    lib = library(root)
    if lib is None:
        return None
    # Its final name from the start: a server's files may name each other (R's script does).
    folder = tempfile.mkdtemp(dir=root, prefix=f"server-{lang.code}-")
    try:
        argv = lang.fork_server(folder, lib)
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        LOG.info("%s: a fresh interpreter per program (no pre-loaded runtime: %s)", lang.code, exc)
        argv = None
    if argv is None:
        shutil.rmtree(folder, ignore_errors=True)
        return None
    os.chmod(folder, 0o755)  # the sandbox user reads it
    LOG.info("%s: programs fork from a pre-loaded runtime", lang.code)
    return argv
