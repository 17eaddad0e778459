"""The sandbox every untrusted program runs in (see bwrap.py for what it isolates and how).

Each program runs as uid/gid 65534, never root: the kernel does not enforce the process limit for
root, nor for a user namespace mapped to root. Started as root, we start bubblewrap from threads
that dropped to 65534 (privileges.py), or else through `setpriv`. At the deadline the namespace's
init is killed, and with it every process of the PID namespace, so background children (`&`,
`setsid`) die too; bubblewrap's --die-with-parent does the same if the executor itself dies.

Where no isolation is possible the executor refuses to run, unless the user asks for
`unsafe_no_sandbox`: then programs run as plain child processes (own session, same limits) in a
temp dir, which is fine for trusted code only.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import os
import platform
import shutil
import stat
import tempfile
import threading
import weakref

from multiplt.errors import PlatformError
from multiplt.execution import bwrap, libcache, native, privileges, zygote
from multiplt.execution.warm import WarmSandbox
from multiplt.execution.bwrap import NOBODY, SANDBOX_PATH
from multiplt.execution.process import Finished, run_bounded
from multiplt.languages.base import LIBRARY_MOUNT, Language

LOG = logging.getLogger("multiplt.execution")
__all__ = ["Limits", "NOBODY", "SANDBOX_PATH", "Sandbox"]


@dataclasses.dataclass(frozen=True)
class Limits:
    """Per-program limits. Defaults follow the platform's contract (issue 4)."""

    address_space: int = 2 << 30   # RLIMIT_AS, bytes
    processes: int = 64            # RLIMIT_NPROC, per sandbox (its own user namespace)
    output: int = 1 << 20          # bytes kept per stream (the rest is read and dropped)
    tmp_size: int = 64 << 20       # the private /tmp (tmpfs, counts as memory)

    def prlimit(self) -> list[str]:
        return ["prlimit", f"--as={self.address_space}", f"--nproc={self.processes}", "--core=0",
                "--"]


class Sandbox:
    """Runs programs in bubblewrap (or, if asked, unsandboxed). Thread-safe; one per batch."""

    def __init__(self, limits: Limits | None = None, unsafe_no_sandbox: bool = False,
                 warm: bool | None = None, native_init: bool = True):
        """`warm`: keep one sandbox per busy worker and start each program inside it in fresh
        namespaces (warm.py, zygote.py); None = where it works, else one bubblewrap per program;
        False = always one bubblewrap per program. `native_init`: warm sandboxes start programs
        with the compiled init where it builds (native.py), else from Python."""
        self.limits = limits or Limits()
        self.unsafe = unsafe_no_sandbox
        self.warm = warm
        self.native_init = native_init
        self._init_path: str | None = None
        self._warm_all: list[WarmSandbox] = []
        self._warm_idle: list[WarmSandbox] = []  # started, alive, running nothing
        self._warm_lock = threading.Lock()  # not _lock: check() starts the first one holding it
        self._checked = False
        self._tmp_root: str | None = None
        self._libs: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self._spawner: concurrent.futures.ThreadPoolExecutor | None = None
        #: languages whose preflight passed with this sandbox (preflight.py)
        self.preflight_passed: set[str] = set()

    # ---- checks ---------------------------------------------------------------------------------
    def check(self) -> None:
        """Make sure isolation works (once); raise PlatformError saying why when it does not."""
        with self._lock:
            if self._checked:
                return
            self._tmp_root = tempfile.mkdtemp(prefix="multiplt-exec-", dir=_temp_parent(self.unsafe))
            os.chmod(self._tmp_root, 0o755)  # the sandbox user mounts the library cache from here
            weakref.finalize(self, shutil.rmtree, self._tmp_root, True)
            if self.unsafe:
                LOG.warning("running untrusted programs WITHOUT a sandbox (--unsafe-no-sandbox)")
            else:
                if os.geteuid() == 0:
                    self._spawner = _dropped_threads()
                    if self._spawner is None and not shutil.which("setpriv"):
                        raise PlatformError("setpriv is not installed (Debian package util-linux);"
                                            " it drops root to uid 65534 for the sandbox")
                self._probe_warm()  # a warm sandbox that runs a probe proves isolation works
                if not self.warm:
                    self._probe()
            needs_prlimit = self.unsafe or (os.geteuid() == 0 and self._spawner is None)
            if needs_prlimit and not shutil.which("prlimit"):
                raise PlatformError("prlimit is not installed (Debian package util-linux); it sets "
                                    "the sandbox's resource limits")
            self._checked = True

    @property
    def mode(self) -> str:
        """How programs run (after check()): "warm", "bubblewrap per program" or "unsandboxed"."""
        if self.unsafe:
            return "unsandboxed"
        return "warm" if self.warm else "bubblewrap per program"

    def probe(self) -> None:
        """Check (again) that the sandbox starts; PlatformError saying why when it does not."""
        if not self.unsafe:
            self._probe()

    def _probe(self) -> None:
        if not shutil.which("bwrap"):
            why = "bubblewrap (bwrap) is not installed (Debian package bubblewrap)"
        else:
            probe = self._call(self._run_bwrap, ["sh", "-c", "id -u; id -g"], None, "", 30.0)
            if probe.exit_code == 0 and probe.stdout.split() == [str(NOBODY), str(NOBODY)]:
                return
            why = (f"bubblewrap could not start a sandbox as uid {NOBODY} (exit {probe.exit_code}): "
                   f"{(probe.stderr or probe.stdout).strip()[:500]}")
        raise PlatformError(
            f"no isolation available for untrusted programs: {why}. Run where bubblewrap can create "
            "user namespaces (Debian: sysctl kernel.unprivileged_userns_clone=1; Ubuntu 24.04+: "
            "an AppArmor profile allowing bwrap userns; in Docker: a seccomp profile that allows "
            "unshare/clone with namespaces), or pass --unsafe-no-sandbox to run them without "
            "isolation (trusted code only)")

    def _probe_warm(self) -> None:
        """Decide whether programs run in warm sandboxes: they do where one starts and runs a
        program as uid 65534 (asked for with warm=True: or else an error saying why)."""
        if self.warm is False:
            return
        why = None
        if not shutil.which("bwrap"):
            why = "bubblewrap is not installed"
        elif not zygote.supported():
            why = f"no clone() system call number known for {platform.machine()}"
        else:
            if self.native_init:
                self._init_path = native.build(self._tmp_root)
            try:
                probe = self._call(self._run_warm, ["sh", "-c", "id -u; id -g"], {}, "probe.sh", "",
                                   30.0, None)
            except PlatformError as exc:
                why = str(exc)
            else:
                if probe.exit_code != 0 or probe.stdout.split() != [str(NOBODY)] * 2:
                    why = f"its probe printed {probe.stdout!r} {probe.stderr[:300]!r}"
        if why is None:
            self.warm = True
            LOG.info("warm sandboxes start each program %s",
                     "with the compiled init" if self._init_path else "from Python")
        elif self.warm:
            raise PlatformError(f"cannot start a warm sandbox: {why}")
        else:
            LOG.info("starting bubblewrap per program (a warm sandbox cannot start: %s)", why)
            self.warm = False

    def prepare(self, lang: Language) -> None:
        """Build the language's precompiled libraries now (from a thread that may write)."""
        self.check()
        self._library(lang)

    # ---- running --------------------------------------------------------------------------------
    def run(self, lang: Language, program: str, timeout: float) -> Finished:
        """Run `program` (a whole file in `lang`) and return what happened."""
        self.check()
        name = f"program.{lang.file_ext}"
        if self.unsafe:
            return self._run_unsafe(lang, program, name, timeout)
        lib = self._library(lang)
        if self.warm:
            return self._call(self._run_warm, lang.command(f"/tmp/{name}"), lang.env(), name,
                              program, timeout, lib)
        binds = ["--ro-bind", lib, LIBRARY_MOUNT] if lib else []
        fd = os.memfd_create("multiplt-program", os.MFD_CLOEXEC)
        try:
            os.write(fd, program.encode("utf-8"))
            os.lseek(fd, 0, os.SEEK_SET)
            return self._call(self._run_bwrap, lang.command(f"/tmp/{name}"), fd, name, timeout,
                              lang.env(), binds)
        finally:
            os.close(fd)

    def enter_worker_thread(self) -> None:
        """Make the calling thread (a worker that only runs programs) a non-root thread, so it
        starts sandboxes itself instead of handing each one to a spawner thread."""
        self.check()
        if self._spawner is not None and os.geteuid() == 0:
            privileges.drop_this_thread(NOBODY, NOBODY)

    def _call(self, fn, *args):
        """Run fn in a thread that is not root (this one, unless it is root)."""
        if self._spawner is None or os.geteuid() != 0:
            return fn(*args)
        return self._spawner.submit(fn, *args).result()

    def _library(self, lang: Language) -> str | None:
        with self._lock:
            if lang.code not in self._libs:
                if self._spawner is not None and os.geteuid() != 0:
                    return None  # a dropped thread cannot write the cache; prepare() builds it
                self._libs[lang.code] = libcache.build(lang, self._tmp_root)
            return self._libs[lang.code]

    def _run_bwrap(self, command: list[str], program_fd: int | None, name: str, timeout: float,
                   env: dict[str, str] | None = None, binds: list[str] = ()) -> Finished:
        as_root = os.geteuid() == 0  # per thread: false in a dropped spawner thread
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        block_r, block_w = os.pipe2(os.O_CLOEXEC) if not as_root else (None, None)
        argv = bwrap.command_line(self.limits, command, status_fd=status_w, block_fd=block_r,
                                  program_fd=program_fd, name=name, env=env, binds=binds,
                                  via_setpriv=as_root)
        fds = [fd for fd in (status_w, block_r, program_fd) if fd is not None]
        namespace = bwrap.Namespace()

        def on_start(info: dict, proc) -> None:
            namespace.attach(info, proc.pid)
            if block_w is not None:
                bwrap.apply_limits(self.limits, info, block_w)

        try:
            return run_bounded(argv, timeout=timeout, output_limit=self.limits.output,
                               status_fd=status_r, on_start=on_start,
                               close_after_spawn=tuple(fd for fd in (status_w, block_r)
                                                       if fd is not None),
                               kill=bwrap.kill, pass_fds=fds, cwd="/",
                               env={"PATH": os.environ.get("PATH", SANDBOX_PATH)})
        except OSError as exc:
            raise PlatformError(f"cannot run bwrap: {exc}") from exc
        finally:
            if block_w is not None:
                os.close(block_w)
            namespace.wait_gone()

    def _run_warm(self, command: list[str], env: dict[str, str], name: str, program: str,
                  timeout: float, lib: str | None) -> Finished:
        """Run in an idle warm sandbox (a new one if none is idle: one per busy worker); one that
        failed is killed and dropped, so the retry gets a fresh one."""
        sandbox = None
        with self._warm_lock:
            while self._warm_idle and sandbox is None:
                sandbox = self._warm_idle.pop()
                if not sandbox.alive:
                    sandbox.close()
                    self._warm_all.remove(sandbox)
                    sandbox = None
        if sandbox is None:
            # The library cache lives in our temp root, which the sandbox's own /tmp would hide.
            sandbox = WarmSandbox(self.limits, via_setpriv=os.geteuid() == 0,
                                  binds=["--ro-bind", self._tmp_root, self._tmp_root],
                                  init=self._init_path)
            with self._warm_lock:
                self._warm_all.append(sandbox)
        try:
            finished = sandbox.run(command, {**bwrap.BASE_ENV, **env}, name, program, timeout,
                                   lib, LIBRARY_MOUNT)
        except PlatformError:
            sandbox.close()
            with self._warm_lock:
                self._warm_all.remove(sandbox)
            raise
        with self._warm_lock:
            self._warm_idle.append(sandbox)
        return finished

    def _run_unsafe(self, lang: Language, program: str, name: str, timeout: float) -> Finished:
        workdir = tempfile.mkdtemp(dir=self._tmp_root)
        try:
            path = os.path.join(workdir, name)
            with open(path, "w", encoding="utf-8") as f:
                f.write(program)
            env = {**os.environ, "HOME": workdir, "TMPDIR": workdir, **lang.env()}
            return run_bounded([*self.limits.prlimit(), *lang.command(path)], timeout=timeout,
                               output_limit=self.limits.output, new_session=True, cwd=workdir,
                               env=env)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with self._warm_lock:
            warm, self._warm_all, self._warm_idle = self._warm_all, [], []
        for sandbox in warm:
            sandbox.close()
        if self._spawner is not None:
            self._spawner.shutdown()
            self._spawner = None
        if self._tmp_root:
            shutil.rmtree(self._tmp_root, ignore_errors=True)
            self._tmp_root = None


def _temp_parent(unsafe: bool) -> str:
    """Where the batch's temp folder goes: TMPDIR, unless the sandbox user (uid 65534) cannot
    reach it (root's TMPDIR may be a mode-700 folder); then /tmp, or a clear error."""
    parent = tempfile.gettempdir()
    if unsafe or os.geteuid() != 0 or _reachable_by_nobody(parent):
        return parent
    if _reachable_by_nobody("/tmp") and os.access("/tmp", os.W_OK):
        LOG.info("TMPDIR %s is not reachable by uid %d (the sandbox user); using /tmp", parent,
                 NOBODY)
        return "/tmp"
    raise PlatformError(f"TMPDIR {parent} is not reachable by uid {NOBODY} (the sandbox user), "
                        "nor is /tmp: set TMPDIR to a folder every user may enter")


def _reachable_by_nobody(path: str) -> bool:
    """Whether uid/gid 65534 (no supplementary groups) may enter `path` and every folder above."""
    path = os.path.realpath(path)
    while True:
        try:
            st = os.stat(path)
        except OSError:
            return False
        bit = (stat.S_IXUSR if st.st_uid == NOBODY else
               stat.S_IXGRP if st.st_gid == NOBODY else stat.S_IXOTH)
        if not st.st_mode & bit:
            return False
        if path == "/":
            return True
        path = os.path.dirname(path)


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
