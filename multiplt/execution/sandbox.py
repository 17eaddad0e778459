"""The sandbox every untrusted program runs in: bubblewrap namespaces plus resource limits.

Each program gets fresh user, PID, network, mount, IPC and UTS namespaces (`bwrap`), runs as
uid/gid 65534 (when we are root we drop to it *before* bwrap: the kernel does not enforce the
process limit for root, nor for a user namespace that maps to root), sees the host's file system
read-only, has a private size-capped tmpfs at /tmp as its only writable place (its program file is
copied in there, so nothing is left on the host), stdin closed, no network but its own loopback,
and the limits of `Limits` set by `prlimit` right before the interpreter starts. At the deadline
the outer bwrap and the namespace's init are killed; the kernel then kills every process in the
PID namespace, so background children (`setsid`, `&`) die with it.

Where no isolation is possible the executor refuses to run, unless the user asks for
`unsafe_no_sandbox`: then programs run as plain child processes (own session, same limits) in a
temp dir, which is fine for trusted code only.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading

from multiplt.errors import PlatformError
from multiplt.execution import libcache
from multiplt.execution.process import Finished, run_bounded
from multiplt.languages.base import Language

LOG = logging.getLogger("multiplt.execution")

NOBODY = 65534
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
_BASE_ENV = {"PATH": SANDBOX_PATH, "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
             "LC_ALL": "C.UTF-8"}


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

    def __init__(self, limits: Limits | None = None, unsafe_no_sandbox: bool = False):
        self.limits = limits or Limits()
        self.unsafe = unsafe_no_sandbox
        self._as_root = os.geteuid() == 0
        self._checked = False
        self._tmp_root = None
        self._libs: dict[str, str | None] = {}
        self._lock = threading.Lock()

    # ---- checks ---------------------------------------------------------------------------------
    def check(self) -> None:
        """Make sure isolation works (once); raise PlatformError saying why when it does not."""
        if self._checked:
            return
        if self.unsafe:
            LOG.warning("running untrusted programs WITHOUT a sandbox (--unsafe-no-sandbox)")
        else:
            self._probe()
        self._tmp_root = tempfile.mkdtemp(prefix="multiplt-exec-")
        os.chmod(self._tmp_root, 0o755)  # the sandbox user mounts the library cache from here
        if not shutil.which("prlimit"):
            raise PlatformError("prlimit is not installed (Debian package util-linux); "
                                "it sets the sandbox's resource limits")
        self._checked = True

    def probe(self) -> None:
        """Check (again) that the sandbox starts; PlatformError saying why when it does not."""
        if not self.unsafe:
            self._probe()

    def _probe(self) -> None:
        why = _no_isolation_reason()
        if why is None:
            probe = self._run_argv(["sh", "-c", "id -u; id -g"], None, "sh", timeout=30)
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

    # ---- running --------------------------------------------------------------------------------
    def run(self, lang: Language, program: str, timeout: float) -> Finished:
        """Run `program` (a whole file in `lang`) and return what happened."""
        self.check()
        name = f"program.{lang.file_ext}"
        if self.unsafe:
            return self._run_unsafe(lang, program, name, timeout)
        fd = os.memfd_create("multiplt-program", os.MFD_CLOEXEC)
        try:
            os.write(fd, program.encode("utf-8"))
            os.lseek(fd, 0, os.SEEK_SET)
            lib = self._library(lang)
            binds = ["--ro-bind", lib, libcache.LIB_MOUNT] if lib else []
            return self._run_argv(lang.command(f"/tmp/{name}"), fd, name, timeout, lang.env(),
                                  binds)
        finally:
            os.close(fd)

    def _library(self, lang: Language) -> str | None:
        with self._lock:
            if lang.code not in self._libs:
                self._libs[lang.code] = libcache.build(lang.code, self._tmp_root)
            return self._libs[lang.code]

    def _run_argv(self, command: list[str], program_fd: int | None, name: str, timeout: float,
                  env: dict[str, str] | None = None, binds: list[str] = ()) -> Finished:
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        argv = ["bwrap",
                "--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY), "--disable-userns",
                "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                "--unshare-cgroup-try", "--hostname", "sandbox",
                "--die-with-parent", "--new-session",
                "--ro-bind", "/", "/",
                "--dev", "/dev", "--remount-ro", "/dev",
                "--proc", "/proc",
                "--perms", "0700", "--size", str(self.limits.tmp_size), "--tmpfs", "/tmp",
                *binds, "--chdir", "/tmp", "--clearenv"]
        for key, value in {**_BASE_ENV, **(env or {})}.items():
            argv += ["--setenv", key, value]
        fds = [status_w]
        if program_fd is not None:
            argv += ["--perms", "0644", "--file", str(program_fd), f"/tmp/{name}"]
            fds.append(program_fd)
        argv += ["--json-status-fd", str(status_w), *self.limits.prlimit(), *command]
        drop = dict(user=NOBODY, group=NOBODY, extra_groups=[]) if self._as_root else {}
        try:
            return run_bounded(argv, timeout=timeout, output_limit=self.limits.output,
                               status_fd=status_r, close_after_spawn=(status_w,),
                               kill=_kill_sandbox, pass_fds=fds, cwd="/",
                               env={"PATH": os.environ.get("PATH", SANDBOX_PATH)}, **drop)
        except OSError as exc:
            raise PlatformError(f"cannot start bwrap: {exc}") from exc

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

    def close(self) -> None:
        if self._tmp_root:
            shutil.rmtree(self._tmp_root, ignore_errors=True)
            self._tmp_root = None


def _no_isolation_reason() -> str | None:
    if not shutil.which("bwrap"):
        return "bubblewrap (bwrap) is not installed (Debian package bubblewrap)"
    return None


def _kill_sandbox(proc: subprocess.Popen, info: dict) -> None:
    """Kill the namespace's init (the kernel then kills every process in the PID namespace) and
    the outer bwrap (whose --die-with-parent would do the same)."""
    pid = info.get("child-pid")
    if pid:
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            pidfd = None
        if pidfd is not None:
            try:
                if _parent_of(pid) == proc.pid:  # the pidfd is that process, not a reused pid
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except OSError:
                pass
            finally:
                os.close(pidfd)
    proc.kill()


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat.rsplit(b")", 1)[1].split()[1])
