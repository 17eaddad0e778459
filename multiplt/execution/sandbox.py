"""The sandbox every untrusted program runs in (see bwrap.py for what it isolates and how).

Each program runs as uid/gid 65534, never root: the kernel does not enforce the process limit for
root, nor for a user namespace mapped to root. Started as root, we start bubblewrap from threads
that dropped to 65534 (privileges.py), or else through `setpriv`. At the deadline the namespace's
init is killed, and with it every process of the PID namespace, so background children (`&`,
`setsid`) die too; bubblewrap's --die-with-parent does the same if the executor itself dies. The
same kill ends a program whose processes together hold more memory than `Limits.memory`.
bubblewrap starts in a session of its own, so a Ctrl-C to the executor's process group never
reaches it: only the executor ends a sandbox (runners.py).

Programs run through one of three runners (runners.py), chosen once per batch in check(): warm
sandboxes where one starts, else one bubblewrap per program. Where no isolation is possible the
executor refuses to run, unless the user asks for `unsafe_no_sandbox`: then programs run as plain
child processes (own session, same limits) in a temp dir, which is fine for trusted code only.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import os
import platform
import shutil
import tempfile
import threading
import weakref

from multiplt.errors import MissingSetup, PlatformError
from multiplt.execution import forkserver, libcache, native, privileges, tempdirs, view, zygote
from multiplt.execution.bwrap import NOBODY, SANDBOX_PATH
from multiplt.execution.process import Finished
from multiplt.execution.runners import BwrapRunner, Runner, SandboxClosed, UnsafeRunner, WarmRunner
from multiplt.languages.base import Language

LOG = logging.getLogger("multiplt.execution")
__all__ = ["Limits", "NOBODY", "SANDBOX_PATH", "Sandbox", "SandboxClosed"]


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-program limits. Defaults follow the platform's contract (issue 4).

    `address_space` and `processes` are per process and per sandbox: alone they let one program
    hold up to 64 x 2 GiB. `memory` caps the sum of the resident memory (RSS) of all of one
    program's processes and of the memory files (memfd) they hold open: whoever waits on the
    program (a warm sandbox's supervisor, else the executor's worker thread) sums it every
    25 ms (zygote.MemoryWatch) and, over the cap, kills the program as at the deadline (its
    whole PID namespace; unsandboxed, its process group).
    The program then fails: exit code 137, `Finished.memory_exceeded`, and stderr ends with
    "sandbox: killed for exceeding the memory cap: ..."; `execute` scores it `Exception`. A page
    two of its processes map (a fork's copy-on-write pages, shared libraries) counts once per
    process, and a program forked from a pre-loaded runtime starts with that runtime's pages
    (about 140 MB for Racket, 100 MB for R). The default, 4 GiB, is twice what one process may
    map, so a program may still use one process to its limit beside helpers (a Python
    `multiprocessing` pool, a shell pipeline), and is about 30 times the largest normal
    program's RSS; a program grows by what its processes can touch in one interval past it
    before it is killed. With N workers, up to N x `memory` may be in use at once. 0: no cap.

    `open_files` (per process) bounds the descriptors the memory cap looks through for memory
    files: without it a program inherits the executor's limit (often 20000 to 1M). 1024 is the
    usual default soft limit, under which every runtime here runs.
    """

    address_space: int = 2 << 30   # RLIMIT_AS, bytes
    processes: int = 64            # RLIMIT_NPROC, per sandbox (its own user namespace)
    output: int = 1 << 20          # bytes kept per stream (the rest is read and dropped)
    tmp_size: int = 64 << 20       # the private /tmp (tmpfs, counts as memory)
    shm_size: int = 16 << 20       # the private /dev/shm (tmpfs, counts as memory)
    memory: int = 4 << 30          # resident bytes of all the program's processes together
    open_files: int = 1024         # RLIMIT_NOFILE, per process

    def prlimit(self) -> list[str]:
        return ["prlimit", f"--as={self.address_space}", f"--nproc={self.processes}",
                f"--nofile={self.open_files}", "--core=0", "--"]


class Sandbox:
    """Runs programs through the runner chosen once, in check() (runners.py). Thread-safe; one
    per batch. close() ends it for good: the programs running then are killed, and every call
    from then on (a worker's next program, a retry, a warm-up) raises SandboxClosed, never a
    replacement runner or sandbox."""

    def __init__(self, limits: Limits | None = None, unsafe_no_sandbox: bool = False,
                 warm: bool | None = None, native_init: bool = True, preload: bool = True,
                 private: tuple[str, ...] | list[str] = ()):
        """`warm`: keep one sandbox per busy worker and start each program inside it in fresh
        namespaces (warm.py, zygote.py); None = where it works, else one bubblewrap per program;
        False = always one bubblewrap per program. `native_init`: warm sandboxes start programs
        with the compiled init where it builds (native.py), else from Python. `preload`: warm
        sandboxes fork programs from a pre-loaded runtime where the language has one
        (forkserver.py). `private`: folders programs must not see wherever they are (the
        executor's input and output; view.py): each must exist by check(), or it is not covered."""
        self.limits = limits or Limits()
        self.unsafe = unsafe_no_sandbox
        self.private = tuple(private)
        self.warm = warm
        self.native_init = native_init
        self.preload = preload
        self._servers: dict[str, list[str] | None] = {}
        #: how programs run; chosen by check()
        self.runner: Runner | None = None
        self._tmp: tempdirs.Owned | None = None
        self._tmp_root: str | None = None
        #: what of the host's files programs see (view.py); chosen by check()
        self.view: view.View | None = None
        self._libs: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self._spawner: concurrent.futures.ThreadPoolExecutor | None = None
        #: languages whose preflight passed with this sandbox (preflight.py)
        self.preflight_passed: set[str] = set()
        self._closed = threading.Event()

    def wait_closed(self, seconds: float) -> bool:
        """Sleep up to `seconds`, less if the sandbox closes meanwhile; whether it is closed."""
        return self._closed.wait(seconds)

    # ---- choosing the runner --------------------------------------------------------------------
    def check(self) -> None:
        """Choose the runner (once), proving it isolates; PlatformError saying why when none does."""
        with self._lock:
            if self._closed.is_set():
                raise SandboxClosed()
            if self.runner is not None:
                return
            # Removed by close(); by the next batch's sweep if this process is killed (tempdirs.py)
            self._tmp = tempdirs.Owned("multiplt-exec-", _temp_parent(self.unsafe))
            # realpath: bound into the sandbox at its own path, which must hold no symlink there
            self._tmp_root = os.path.realpath(self._tmp.path)
            os.chmod(self._tmp_root, 0o755)  # the sandbox user mounts the library cache from here
            weakref.finalize(self, self._tmp.close)
            if self.unsafe:
                LOG.warning("running untrusted programs WITHOUT a sandbox (--unsafe-no-sandbox)")
                runner = UnsafeRunner(self.limits, self._tmp_root)
            else:
                if os.geteuid() == 0:
                    self._spawner = _dropped_threads()
                    if self._spawner is None and not shutil.which("setpriv"):
                        raise MissingSetup("setpriv is not installed (Debian package util-linux);"
                                            " it drops root to uid 65534 for the sandbox")
                # What of the host's files programs see, once per batch (view.py)
                self.view = view.current(for_nobody=os.geteuid() == 0, private=self.private)
                LOG.info("sandbox: covered %s", " ".join(self.view.hidden) or "nothing")
                runner = self._warm_runner()  # a warm sandbox that runs a probe proves isolation
                if runner is None:
                    runner = BwrapRunner(self.limits, self._call, self.view)
                    runner.probe()
            needs_prlimit = self.unsafe or (os.geteuid() == 0 and self._spawner is None)
            if needs_prlimit and not shutil.which("prlimit"):
                runner.close()
                raise MissingSetup("prlimit is not installed (Debian package util-linux); it sets "
                                    "the sandbox's resource limits")
            self.runner = runner
            self.warm = isinstance(runner, WarmRunner)

    def _warm_runner(self) -> WarmRunner | None:
        """A warm runner where one starts and runs a program as uid 65534; else None (asked for
        with warm=True: an error saying why)."""
        if self.warm is False:
            return None
        why = None
        if not shutil.which("bwrap"):
            why = "bubblewrap is not installed"
        elif not zygote.supported():
            why = f"no clone() system call number known for {platform.machine()}"
        else:
            init = native.build(self._tmp_root) if self.native_init else None
            runner = WarmRunner(self.limits, self._call, self._tmp_root, init, self.view)
            try:
                runner.probe()
            except PlatformError as exc:
                runner.close()
                why = str(exc)
            else:
                LOG.info("warm sandboxes start each program %s",
                         "with the compiled init" if init else "from Python")
                return runner
        if self.warm:
            raise PlatformError(f"cannot start a warm sandbox: {why}")
        LOG.info("starting bubblewrap per program (a warm sandbox cannot start: %s)", why)
        return None

    @property
    def mode(self) -> str:
        """How programs run (after check()): "warm", "bubblewrap per program" or "unsandboxed"."""
        return self._runner().mode

    def probe(self) -> None:
        """Check (again) that the runner works; PlatformError saying why when it does not."""
        self._runner().probe()

    def prepare(self, lang: Language) -> None:
        """Build the language's precompiled libraries now (from a thread that may write)."""
        self.check()
        self._library(lang)
        self._server(lang)

    # ---- running --------------------------------------------------------------------------------
    def run(self, lang: Language, program: str, timeout: float) -> Finished:
        """Run `program` (a whole file in `lang`) and return what happened."""
        runner = self._runner()
        lib = self._library(lang) if runner.mounts_libraries else None
        return runner.run(lang, program, f"program.{lang.file_ext}", timeout, lib,
                          server=self._server(lang, runner))

    def _runner(self) -> Runner:
        """The runner (chosen now if not yet); SandboxClosed once closed."""
        self.check()
        runner = self.runner
        if runner is None:  # closed since check()
            raise SandboxClosed()
        return runner

    def warm_up(self, langs: list[Language]) -> None:
        """Start one more warm sandbox and the languages' pre-loaded runtimes in it now, so that
        a worker's first program does not wait for them (nothing to do for other runners).
        Call prepare() for each language first (a dropped worker thread cannot build them)."""
        runner = self._runner()
        if not isinstance(runner, WarmRunner):
            return
        runner.warm_up([(argv, lang.env()) for lang in langs
                        if (argv := self._server(lang, runner)) is not None])

    def enter_worker_thread(self) -> None:
        """Make the calling thread (a worker that only runs programs) a non-root thread, so it
        starts sandboxes itself instead of handing each one to a spawner thread. On a closed
        sandbox (a pool whose thread starts as the run stops) it does nothing: every program
        the thread is given then raises SandboxClosed."""
        try:
            self.check()
        except SandboxClosed:
            return
        if self._spawner is not None and os.geteuid() == 0:
            privileges.drop_this_thread(NOBODY, NOBODY)

    def _call(self, fn, *args):
        """Run fn in a thread that is not root (this one, unless it is root)."""
        if self._spawner is None or os.geteuid() != 0:
            return fn(*args)
        return self._spawner.submit(fn, *args).result()

    def _library(self, lang: Language) -> str | None:
        with self._lock:
            if self._closed.is_set():  # its temp folder is gone
                raise SandboxClosed()
            if lang.code not in self._libs:
                if self._spawner is not None and os.geteuid() != 0:
                    return None  # a dropped thread cannot write the cache; prepare() builds it
                self._libs[lang.code] = libcache.build(lang, self._tmp_root)
            return self._libs[lang.code]

    def _server(self, lang: Language, runner: Runner | None = None) -> list[str] | None:
        """The argv of the language's pre-loaded runtime, where programs fork from one."""
        runner = runner or self._runner()
        if not (self.preload and self.warm and runner.forks):
            return None
        with self._lock:
            if self._closed.is_set():  # its temp folder is gone
                raise SandboxClosed()
            if lang.code not in self._servers:
                if self._spawner is not None and os.geteuid() != 0:
                    return None  # a dropped thread cannot write; prepare() builds it
                self._servers[lang.code] = forkserver.build(lang, self._tmp_root)
            return self._servers[lang.code]

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Kill what runs, remove the temp folder; for good (SandboxClosed from then on)."""
        with self._lock:
            self._closed.set()
            runner, self.runner = self.runner, None
        if runner is not None:
            runner.close()
        if self._spawner is not None:
            self._spawner.shutdown()
            self._spawner = None
        if self._tmp is not None:
            self._tmp.close()
            self._tmp = self._tmp_root = None


def _temp_parent(unsafe: bool) -> str:
    """Where the batch's temp folder goes: TMPDIR, unless the sandbox user (uid 65534) cannot
    reach it (root's TMPDIR may be a mode-700 folder); then /tmp, or a clear error."""
    parent = tempfile.gettempdir()
    if unsafe or os.geteuid() != 0 or view.reachable_by_nobody(parent):
        return parent
    if view.reachable_by_nobody("/tmp") and os.access("/tmp", os.W_OK):
        LOG.info("TMPDIR %s is not reachable by uid %d (the sandbox user); using /tmp", parent,
                 NOBODY)
        return "/tmp"
    raise PlatformError(f"TMPDIR {parent} is not reachable by uid {NOBODY} (the sandbox user), "
                        "nor is /tmp: set TMPDIR to a folder every user may enter")


def _dropped_threads() -> concurrent.futures.ThreadPoolExecutor | None:
    """A pool of threads running as 65534 (created on demand), or None where that fails."""
    if not privileges.supported():
        return None
    pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=256, thread_name_prefix="multiplt-sandbox",
        initializer=privileges.drop_this_thread, initargs=(NOBODY, NOBODY))
    try:
        if pool.submit(os.geteuid).result() == NOBODY:
            return pool
    except concurrent.futures.BrokenExecutor as exc:
        LOG.info("cannot drop threads to uid %d (%s); using setpriv", NOBODY, exc)
    pool.shutdown()
    return None
