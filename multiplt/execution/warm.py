"""The executor's side of a warm sandbox (zygote.py says what runs inside and why).

One `WarmSandbox` per busy worker (Sandbox keeps the idle ones): bubblewrap is started once, with the supervisor inside, and
each program is one request/answer over its pipes. The caller's thread blocks on the answer;
should the supervisor not answer by the program's deadline plus a margin, or die, the whole
sandbox is killed (bubblewrap's namespace init, as for a single program) and a PlatformError
says so; the executor's retry then starts a fresh sandbox, so no verdict comes from a broken one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import select
import shutil
import struct
import subprocess
import sys
import time

from multiplt.errors import PlatformError
from multiplt.execution import bwrap, seccomp, zygote
from multiplt.execution.process import Finished

#: how long past the program's own deadline the supervisor may take to answer
ANSWER_MARGIN_S = 10.0
START_TIMEOUT_S = 30.0


def _supervisor_source() -> str:
    spec = importlib.util.find_spec("multiplt.execution.zygote")
    with open(spec.origin, encoding="utf-8") as f:
        return f.read()


def supervisor_python() -> str:
    """The python3 on the sandbox's PATH (the sandbox user can run it: the Python language runs
    there too); else this interpreter itself, which may sit in a folder that user cannot enter."""
    return shutil.which("python3", path=bwrap.SANDBOX_PATH) or os.path.realpath(sys.executable)


class WarmSandbox:
    """A started sandbox with its supervisor; runs one program at a time (not thread-safe)."""

    def __init__(self, limits, *, python: str | None = None, via_setpriv: bool = False,
                 binds: list[str] = (), init: str | None = None, view: bwrap.View | None = None):
        self.limits = limits
        self.init = init  # the compiled init (native.py), or None: the supervisor clones itself
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        # The supervisor, its servers and every program run under the system call filter
        # (seccomp.py): defense in depth, since each program's init is not dumpable (init.c).
        filter_fd = seccomp.sandbox_fd()
        passed = (status_w,) if filter_fd is None else (status_w, filter_fd)
        # -I -S: the supervisor needs only the standard library, so any Python 3.8+ will do.
        command = [python or supervisor_python(), "-I", "-S", "-c", _supervisor_source()]
        argv = bwrap.command_line(limits, command, status_fd=status_w, block_fd=None,
                                  via_setpriv=via_setpriv, binds=binds, capabilities=True,
                                  with_limits=False, seccomp_fd=filter_fd, view=view)
        # In memory, not in TMPDIR: this runs in a thread dropped to the sandbox user, who may
        # not be able to write there (root with TMPDIR=/root/tmp, mode 700).
        self._stderr = os.fdopen(os.memfd_create("multiplt-warm-stderr", os.MFD_CLOEXEC), "w+b")
        try:
            # a session of its own: a Ctrl-C to the executor's process group does not kill it
            # (and its program with it) before the executor decides the run's end (runners.py)
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self._stderr, pass_fds=passed, cwd="/",
                                         env={"PATH": os.environ.get("PATH", bwrap.SANDBOX_PATH)},
                                         start_new_session=True)
        except OSError as exc:
            self._stderr.close()
            raise PlatformError(f"cannot run bwrap: {exc}") from exc
        finally:
            for fd in passed:
                os.close(fd)
        self._status = os.fdopen(status_r, "rb", buffering=0)
        self.info: dict = {}
        try:
            ready = self._read_frame(time.monotonic() + START_TIMEOUT_S)
        except PlatformError:
            self.close()
            raise
        if "ready" not in ready:
            self.close()
            raise PlatformError(f"warm sandbox did not start: {ready}")
        self.info = bwrap.first_status(self._status)

    def start_server(self, argv: list[str], env: dict) -> None:
        """Start a pre-loaded runtime now, ahead of its first program (the key of a server is
        its argv and env: pass the env its programs will be run with)."""
        try:
            zygote.write_frame(self.proc.stdin.fileno(),
                               {"server": argv, "env": env, "start_only": True})
        except OSError as exc:
            self.kill()
            raise PlatformError(f"warm sandbox is gone: {exc}; {self._why()}") from exc
        answer = self._read_frame(time.monotonic() + START_TIMEOUT_S + zygote.SERVER_START_S)
        if "error" in answer:
            raise PlatformError(f"warm sandbox: {answer['error']}")

    # ---- one program ----------------------------------------------------------------------------
    def run(self, argv: list[str], env: dict, name: str, program: str, timeout: float,
            lib: str | None, lib_mount: str, server: list[str] | None = None) -> Finished:
        request = {"argv": argv, "env": env, "name": name, "program": program,
                   "timeout": timeout, "lib": lib, "lib_mount": lib_mount, "init": self.init,
                   "server": server,
                   "limits": {"address_space": self.limits.address_space,
                              "processes": self.limits.processes,
                              "open_files": self.limits.open_files,
                              "output": self.limits.output, "tmp_size": self.limits.tmp_size,
                              "shm_size": self.limits.shm_size, "memory": self.limits.memory}}
        try:  # the supervisor's own framing; nothing is ever buffered in proc.stdin
            zygote.write_frame(self.proc.stdin.fileno(), request)
        except OSError as exc:
            self.kill()
            raise PlatformError(f"warm sandbox is gone: {exc}; {self._why()}") from exc
        answer = self._read_frame(time.monotonic() + timeout + ANSWER_MARGIN_S)
        if "error" in answer:
            raise PlatformError(f"warm sandbox: {answer['error']}")
        return Finished(exit_code=answer["exit_code"], stdout=answer["stdout"],
                        stderr=answer["stderr"], timed_out=answer["timed_out"],
                        duration=answer["duration"],
                        memory_exceeded=bool(answer.get("memory_exceeded")),
                        sandbox_info={"pid-namespace": answer["pid_namespace"], "warm": True,
                                      "forked": bool(server),
                                      "sandbox-pid-namespace": self.info.get("pid-namespace")})

    def _read_frame(self, deadline: float) -> dict:
        head = self._read_exact(4, deadline)
        return json.loads(self._read_exact(struct.unpack("!I", head)[0], deadline))

    def _read_exact(self, n: int, deadline: float) -> bytes:
        fd = self.proc.stdout.fileno()
        buf = bytearray()
        while len(buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                self.kill()
                raise PlatformError("warm sandbox did not answer in time; it was killed")
            data = os.read(fd, n - len(buf))
            if not data:
                self.kill()
                raise PlatformError(f"warm sandbox exited; {self._why()}")
            buf += data
        return bytes(buf)

    def _why(self) -> str:
        try:
            self._stderr.seek(0)
            text = self._stderr.read()[-2000:].decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            text = ""
        code = self.proc.poll()
        return f"exit code {code}: {text}" if text else f"exit code {code}"

    # ---- lifetime -------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """Kill bubblewrap's namespace init (and with it the supervisor and any program)."""
        bwrap.kill(self.proc, self.info)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # the supervisor exits at end of input
                self.proc.wait(2)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        for f in (self.proc.stdin, self.proc.stdout, self._status, self._stderr):
            try:
                f.close()
            except OSError:
                pass

