"""The three ways the sandbox runs a program, behind one interface; `Sandbox` picks one per batch.

- `WarmRunner`: one warm sandbox per busy worker, fresh namespaces per program (warm.py, zygote.py);
- `BwrapRunner`: one bubblewrap per program (bwrap.py);
- `UnsafeRunner`: plain child processes with the same rlimits, no isolation
  (`--unsafe-no-sandbox`, trusted code only).

A runner gets the program's text and file name, its language (command and environment) and the
folder of that language's precompiled libraries (or None), and returns what happened. A failure
of the platform raises PlatformError: retried by retry.py, never scored. `call(fn, *args)` runs
`fn` in a thread that is not root (the Sandbox's dropped threads), as bubblewrap must start.

Closing a runner (the run is stopping: Ctrl-C, SIGTERM, a platform failure) kills the programs
it is running at that moment, and a program it ran or would start from then on raises
`SandboxClosed` rather than giving a result: a killed program's outcome is not its own.

Every sandbox (a bubblewrap per program, a warm one) and every unsandboxed program starts in a
session of its own, so a signal to the executor's process group (a terminal's Ctrl-C, a task
runner's SIGTERM to the group) never reaches it: only the executor ends it (its deadline, its
memory cap, close()), after which the executor itself decides what its outcome is. A bubblewrap
per program killed by a signal nevertheless (`kill` by hand) is a platform failure, retried and
never scored.
"""

from __future__ import annotations

import abc
import ctypes
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from typing import Callable, ClassVar

from multiplt.errors import MissingSetup, PlatformError
from multiplt.execution import bwrap, seccomp
from multiplt.execution.bwrap import NOBODY, SANDBOX_PATH
from multiplt.execution.process import Finished, kill_group, run_bounded
from multiplt.execution.view import View
from multiplt.execution.warm import WarmSandbox
from multiplt.languages.base import LIBRARY_MOUNT, Language

#: a program that proves a runner isolates: it must print uid and gid 65534
PROBE = ["sh", "-c", "id -u; id -g"]


def _probe_ok(finished: Finished) -> bool:
    return finished.exit_code == 0 and finished.stdout.split() == [str(NOBODY)] * 2


class SandboxClosed(PlatformError):
    """The sandbox (or its runner) was closed: the run is stopping. Never retried; a program
    running when it closed was killed and has no result."""

    def __init__(self, message: str = "the sandbox was closed (the run is stopping)"):
        super().__init__(message)


class _Running:
    """The processes a runner has running now, each with how to kill it; close() kills them
    all and every later one as soon as it starts."""

    def __init__(self):
        self._lock = threading.Lock()
        self._kills: dict[subprocess.Popen, Callable[[], None]] = {}
        self.closed = False

    def add(self, proc: subprocess.Popen, kill: Callable[[], None]) -> None:
        with self._lock:
            if not self.closed:
                self._kills[proc] = kill
                return
        kill()  # closed while it started

    def remove(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._kills.pop(proc, None)

    def close(self) -> None:
        with self._lock:
            self.closed = True
            kills, self._kills = list(self._kills.values()), {}
        for kill in kills:
            kill()

    def check(self) -> None:
        """SandboxClosed once closed."""
        if self.closed:
            raise SandboxClosed()


#: how long close() waits for a program it killed to be gone
KILL_WAIT_S = 5.0


def _killed(proc: subprocess.Popen, kill: Callable[[], None]) -> None:
    """Kill a running program (`kill`: its whole sandbox, or its process group) and wait until
    it is gone, so that close() returns with nothing of it left (bubblewrap exits only once its
    PID namespace is empty). Killed even where `proc` itself has exited already: what it
    started may be left (a bubblewrap's namespace init that bubblewrap died before letting go
    on, which then waits for ever; an unsandboxed program's background children)."""
    kill()
    try:
        proc.wait(KILL_WAIT_S)
    except subprocess.TimeoutExpired:
        pass


class Runner(abc.ABC):
    """Runs one program at a time per calling thread; thread-safe."""

    #: how programs run, as `multiplt execute` reports it
    mode: ClassVar[str]
    #: whether programs see the language's precompiled libraries (at LIBRARY_MOUNT)
    mounts_libraries: ClassVar[bool] = True
    #: whether programs can fork from a pre-loaded runtime (forkserver.py)
    forks: ClassVar[bool] = False

    @abc.abstractmethod
    def run(self, lang: Language, program: str, name: str, timeout: float,
            lib: str | None, server: list[str] | None = None) -> Finished:
        """Run `program` (a whole file in `lang`, stored as /tmp/`name` where it runs); `server`:
        the argv of the language's pre-loaded runtime to fork it from (runners that `forks`)."""

    def probe(self) -> None:
        """Raise PlatformError saying why when this runner cannot run programs now."""

    def close(self) -> None:
        """Release what the runner holds (started sandboxes) and kill the programs it runs now;
        from then on a program raises SandboxClosed (the runners here)."""


class BwrapRunner(Runner):
    """One bubblewrap per program; the program reaches it through a memfd, never a file."""

    mode = "bubblewrap per program"

    def __init__(self, limits, call: Callable, view: View | None = None):
        self.limits, self._call = limits, call
        self.view = view  # what programs see of the host's files (view.py); None: per program
        self._running = _Running()

    def run(self, lang, program, name, timeout, lib, server=None) -> Finished:
        self._running.check()
        binds = ["--ro-bind", lib, LIBRARY_MOUNT] if lib else []
        fd = os.memfd_create("multiplt-program", os.MFD_CLOEXEC)
        try:
            os.write(fd, program.encode("utf-8"))
            os.lseek(fd, 0, os.SEEK_SET)
            return self._call(self._run, lang.command(f"/tmp/{name}"), fd, name, timeout,
                              lang.env(), binds)
        finally:
            os.close(fd)

    def probe(self) -> None:
        if not shutil.which("bwrap"):
            why = "bubblewrap (bwrap) is not installed (Debian package bubblewrap)"
        else:
            probe = self._call(self._run, PROBE, None, "", 30.0)
            if _probe_ok(probe):
                return
            why = (f"bubblewrap could not start a sandbox as uid {NOBODY} (exit {probe.exit_code}): "
                   f"{(probe.stderr or probe.stdout).strip()[:500]}")
        error = MissingSetup if not shutil.which("bwrap") else PlatformError
        raise error(
            f"no isolation available for untrusted programs: {why}. Run where bubblewrap can create "
            "user namespaces (Debian: sysctl kernel.unprivileged_userns_clone=1; Ubuntu 24.04+: "
            "an AppArmor profile allowing bwrap userns; in Docker: a seccomp profile that allows "
            "unshare/clone with namespaces), or pass --unsafe-no-sandbox to run them without "
            "isolation (trusted code only)")

    def _run(self, command: list[str], program_fd: int | None, name: str, timeout: float,
             env: dict[str, str] | None = None, binds: list[str] = ()) -> Finished:
        as_root = os.geteuid() == 0  # per thread: false in a dropped spawner thread
        filter_fd = seccomp.sandbox_fd()  # bubblewrap reads it to its end and closes it
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        block_r, block_w = os.pipe2(os.O_CLOEXEC) if not as_root else (None, None)
        argv = bwrap.command_line(self.limits, command, status_fd=status_w, block_fd=block_r,
                                  program_fd=program_fd, name=name, env=env, binds=binds,
                                  via_setpriv=as_root, seccomp_fd=filter_fd, hide_init=True,
                                  view=self.view)
        fds = [fd for fd in (status_w, block_r, program_fd, filter_fd) if fd is not None]
        namespace = bwrap.Namespace()
        known: dict = {}  # bubblewrap's first report, for a kill by close()
        spawned: list[subprocess.Popen] = []

        def on_spawn(proc) -> None:
            spawned.append(proc)
            self._running.add(proc, lambda: _killed(proc, lambda: bwrap.kill(proc, known)))

        def on_start(info: dict, proc) -> None:
            known.update(info)
            namespace.attach(info, proc.pid)
            if block_w is not None:
                bwrap.apply_limits(self.limits, info, block_w)

        try:
            finished = run_bounded(argv, timeout=timeout, output_limit=self.limits.output,
                                   status_fd=status_r, on_start=on_start, on_spawn=on_spawn,
                                   close_after_spawn=tuple(fd for fd in (status_w, block_r, filter_fd)
                                                           if fd is not None),
                                   kill=bwrap.kill, new_session=True, pass_fds=fds, cwd="/",
                                   env={"PATH": os.environ.get("PATH", SANDBOX_PATH)},
                                   memory=self.limits.memory, memory_root=_below_bwrap_init)
        except OSError as exc:
            raise PlatformError(f"cannot run bwrap: {exc}") from exc
        finally:
            for proc in spawned:
                self._running.remove(proc)
            if block_w is not None:
                os.close(block_w)
            namespace.wait_gone()
        self._running.check()  # closed meanwhile: killed, no result of the program's
        if finished.exit_code < 0 and not finished.timed_out:
            # bubblewrap reports a program killed by signal N as 128 + N: a negative code is
            # bubblewrap itself killed by a signal this run did not send, never the program's
            # outcome (it ran in a session of its own, so not a Ctrl-C to the executor's group)
            raise PlatformError(f"bubblewrap was killed by signal {-finished.exit_code} "
                                f"({_signal_name(-finished.exit_code)}) while the program ran")
        return finished

    def close(self) -> None:
        self._running.close()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown"


def _below_bwrap_init(proc, info: dict) -> tuple[int, bool]:
    """Whose descendants' memory counts against the cap: those of bubblewrap's init (pid 1 of
    the program's namespace, not counted itself) once bubblewrap has reported it, and until then
    those of bubblewrap (the init included, about a megabyte)."""
    return int(info.get("child-pid") or proc.pid), False


class WarmRunner(Runner):
    """A pool of warm sandboxes: an idle one runs the program, else a new one starts (one per
    busy worker); one that failed is killed and dropped, so the retry gets a fresh one."""

    mode = "warm"
    forks = True

    def __init__(self, limits, call: Callable, tmp_root: str, init: str | None,
                 view: View | None = None):
        self.limits, self._call, self.tmp_root = limits, call, tmp_root
        self.view = view  # what programs see of the host's files (view.py); None: per sandbox
        self.init = init  # the compiled init (native.py), or None: programs start from Python
        self.all: list[WarmSandbox] = []
        self.idle: list[WarmSandbox] = []  # started, alive, running nothing
        self._lock = threading.Lock()
        self._closed = False

    def run(self, lang, program, name, timeout, lib, server=None) -> Finished:
        return self._call(self._run, lang.command(f"/tmp/{name}"), lang.env(), name, program,
                          timeout, lib, server)

    def probe(self) -> None:
        probe = self._call(self._run, PROBE, {}, "probe.sh", "", 30.0, None)
        if not _probe_ok(probe):
            raise PlatformError(f"a warm sandbox's probe printed {probe.stdout!r} "
                                f"{probe.stderr[:300]!r}, not uid and gid {NOBODY}")

    def _run(self, command: list[str], env: dict[str, str], name: str, program: str,
             timeout: float, lib: str | None, server: list[str] | None = None) -> Finished:
        sandbox = None
        with self._lock:
            if self._closed:  # the run is stopping: start nothing more
                raise SandboxClosed()
            while self.idle and sandbox is None:
                sandbox = self.idle.pop()
                if not sandbox.alive:
                    sandbox.close()
                    self.all.remove(sandbox)
                    sandbox = None
        if sandbox is None:
            sandbox = self._start()
        try:
            finished = sandbox.run(command, {**bwrap.BASE_ENV, **env}, name, program, timeout,
                                   lib, LIBRARY_MOUNT, server)
        except PlatformError as exc:
            self._drop(sandbox)
            if self._closed:  # killed by close(), not broken
                raise SandboxClosed() from exc
            raise
        self._park(sandbox)
        return finished

    def _start(self) -> WarmSandbox:
        # The library cache lives in the temp root, which the sandbox's own /tmp would hide.
        try:
            sandbox = WarmSandbox(self.limits, via_setpriv=os.geteuid() == 0,
                                  binds=["--ro-bind", self.tmp_root, self.tmp_root], init=self.init,
                                  view=self.view)
        except PlatformError as exc:
            if self._closed:  # killed by a Ctrl-C to the process group while it started
                raise SandboxClosed() from exc
            raise
        with self._lock:
            if not self._closed:
                self.all.append(sandbox)
                return sandbox
        sandbox.kill()  # closed while it started
        sandbox.close()
        raise SandboxClosed()

    def warm_up(self, servers: list[tuple[list[str], dict[str, str]]]) -> None:
        """One more idle sandbox, its pre-loaded runtimes (argv, language env) started."""
        self._call(self._warm_up, servers)

    def _warm_up(self, servers: list[tuple[list[str], dict[str, str]]]) -> None:
        if self._closed:
            raise SandboxClosed()
        sandbox = self._start()
        try:
            for argv, env in servers:
                sandbox.start_server(argv, {**bwrap.BASE_ENV, **env})
        except PlatformError as exc:
            self._drop(sandbox)
            if self._closed:
                raise SandboxClosed() from exc
            raise
        self._park(sandbox)

    def _park(self, sandbox: WarmSandbox) -> None:
        """Back to the idle ones; closed instead if the runner closed meanwhile."""
        with self._lock:
            if not self._closed:
                self.idle.append(sandbox)
                return
        sandbox.close()

    def _drop(self, sandbox: WarmSandbox) -> None:
        sandbox.close()
        with self._lock:
            if sandbox in self.all:
                self.all.remove(sandbox)

    def close(self) -> None:
        """Close the idle sandboxes and kill the busy ones (their programs with them): each busy
        one's worker then gets SandboxClosed and closes it (its pipes are the worker's to
        close). Nothing starts after this."""
        with self._lock:
            self._closed = True
            started, idle, self.all, self.idle = self.all, self.idle, [], []
        busy = [s for s in started if s not in idle]
        for sandbox in busy:
            sandbox.kill()
        for sandbox in idle:
            sandbox.close()


def unmounted_env(env: dict[str, str], folder: str) -> dict[str, str]:
    """A language's environment (`Language.env`) for a program run outside the sandbox, where
    nothing is mounted at LIBRARY_MOUNT: there that path is a name in the host's world-writable
    /tmp, where any user or an earlier program could plant a fake test library. Every mention of
    it becomes `folder` (one only this program can write to, which need not exist), so the
    language's default library path is what gets searched."""
    return {key: value.replace(LIBRARY_MOUNT, folder) for key, value in env.items()}


def unsafe_env(env: dict[str, str], folder: str) -> dict[str, str]:
    """The whole environment of a program run outside the sandbox: what the sandbox gives its
    programs (bwrap.BASE_ENV, the language's `env`), with HOME and TMPDIR its own `folder` and
    the host's PATH (where the runtimes are found), never the rest of the executor's own
    environment: that holds credentials (HF_TOKEN, AWS_*, OPENAI_API_KEY ...)."""
    return {**bwrap.BASE_ENV, "PATH": os.environ.get("PATH") or SANDBOX_PATH, "HOME": folder,
            "TMPDIR": folder, **unmounted_env(env, os.path.join(folder, "no-library"))}


PR_GET_DUMPABLE, PR_SET_DUMPABLE = 3, 4
_dumpable_lock = threading.Lock()
_undumpable_holders = 0
_was_dumpable: int | None = None


def _prctl(option: int, value: int = 0) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    result = libc.prctl(ctypes.c_int(option), ctypes.c_ulong(value), ctypes.c_ulong(0),
                        ctypes.c_ulong(0), ctypes.c_ulong(0))
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")
    return result


def hold_undumpable() -> None:
    """Make this process not dumpable while an unsandboxed program may run (nested holds
    counted). A program of the same uid could otherwise read the executor's environment
    (/proc/<ppid>/environ: credentials), its memory (/proc/<ppid>/mem) or trace it; the kernel
    refuses all three for a process that is not dumpable, unless the reader has CAP_SYS_PTRACE
    (root on a host; not root in a container with Docker's default capabilities)."""
    global _undumpable_holders, _was_dumpable
    with _dumpable_lock:
        if _undumpable_holders == 0:
            _was_dumpable = _prctl(PR_GET_DUMPABLE)
            _prctl(PR_SET_DUMPABLE, 0)
        _undumpable_holders += 1


def release_undumpable() -> None:
    """The last hold gone: dumpable again as before (as the executor's own /proc files need)."""
    global _undumpable_holders
    with _dumpable_lock:
        _undumpable_holders -= 1
        if _undumpable_holders == 0 and _was_dumpable:
            _prctl(PR_SET_DUMPABLE, _was_dumpable)


class UnsafeRunner(Runner):
    """No isolation: a child process in its own session and temp folder, under prlimit, with
    the sandbox's environment (unsafe_env), not the executor's; the memory cap counts the child
    and its descendants and, as at the deadline, kills its process group. From its start to its
    close the executor is not dumpable (hold_undumpable): the child, of the same uid, cannot read
    the executor's own environment or memory through /proc."""

    mode = "unsandboxed"
    mounts_libraries = False  # no mount namespace: the language's default library path

    def __init__(self, limits, tmp_root: str):
        self.limits, self.tmp_root = limits, tmp_root
        self._running = _Running()
        hold_undumpable()
        self._held = True

    def run(self, lang, program, name, timeout, lib, server=None) -> Finished:
        self._running.check()
        try:
            workdir = tempfile.mkdtemp(dir=self.tmp_root)
        except OSError:  # closed meanwhile, which removes tmp_root: SandboxClosed, as after close
            self._running.check()
            raise
        spawned: list[subprocess.Popen] = []

        def on_spawn(proc) -> None:  # its own session: the group is the program's processes
            spawned.append(proc)
            self._running.add(proc, lambda: _killed(proc, lambda: kill_group(proc.pid)))

        try:
            path = os.path.join(workdir, name)
            try:
                with open(path, "w", encoding="utf-8") as f:
                    f.write(program)
            except OSError:  # the same: the folder went with a close
                self._running.check()
                raise
            # the memory cap counts the program and its descendants; prlimit execs the program
            finished = run_bounded([*self.limits.prlimit(), *lang.command(path)], timeout=timeout,
                                   output_limit=self.limits.output, new_session=True, cwd=workdir,
                                   env=unsafe_env(lang.env(), workdir), memory=self.limits.memory,
                                   on_spawn=on_spawn)
        finally:
            for proc in spawned:
                self._running.remove(proc)
            shutil.rmtree(workdir, ignore_errors=True)
        self._running.check()  # closed meanwhile: killed, no result of the program's
        return finished

    def close(self) -> None:
        self._running.close()
        with _dumpable_lock:
            held, self._held = self._held, False
        if held:
            release_undumpable()
