"""The bubblewrap command line for one program, its resource limits, and its kill.

Namespaces: user (mapped to 65534), PID, network (only its own loopback), mount, IPC, UTS and
cgroup where possible; no nested user namespaces. File system: the host's, read-only, with the
places of user data and sockets (/home, /root, /run, /var, the executor's home ...) covered by
empty read-only tmpfs (view.py); a fresh /proc for its PID namespace; a private /dev (read-only)
with the usual devices; its only writable places are a size-capped tmpfs at /tmp, holding the
program file (copied in from a memfd, so nothing is written on the host), and a smaller one at
/dev/shm (POSIX shared memory and semaphores: Python's multiprocessing needs them).

The namespace's init is out of the program's reach, though both run as 65534: bubblewrap's own
init (pid 1, which carries the program's exit code out on an eventfd) makes itself dumpable, so
the kernel would let the program trace it or write its memory. A system call filter
(seccomp.py, `--seccomp`, also applied to a warm sandbox's supervisor and all it starts) denies
ptrace, process_vm_readv/writev and pidfd_getfd, and for a bubblewrap per program an empty
read-only tmpfs covers /proc/1 (its mem, fd, environ ...) in the program's /proc. (A warm
sandbox's programs never see bubblewrap's init: they are in PID namespaces of their own, whose
init is not dumpable: init.c.)

Limits are set on the namespace's init process while bubblewrap waits on its --block-fd, so the
program inherits them with no extra exec; where that is not possible (root without
CAP_SYS_RESOURCE in a thread we could not drop) `prlimit` sets them inside instead.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import subprocess

from multiplt.execution.view import View, current as current_view

NOBODY = 65534
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
BASE_ENV = {"PATH": SANDBOX_PATH, "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8"}


def command_line(limits, command: list[str], *, status_fd: int, block_fd: int | None,
                 program_fd: int | None = None, name: str = "", env: dict | None = None,
                 binds: list[str] = (), via_setpriv: bool = False, capabilities: bool = False,
                 with_limits: bool = True, seccomp_fd: int | None = None,
                 hide_init: bool = False, view: View | None = None) -> list[str]:
    """`block_fd` set: limits are applied from outside (see apply_limits); else by prlimit,
    unless `with_limits` is false (a warm sandbox's supervisor: it sets them per program).
    `capabilities`: the command keeps every capability of the sandbox's own user namespace
    (a warm sandbox's supervisor mounts and unshares per program; zygote.py).
    `seccomp_fd`: the system call filter (seccomp.sandbox_fd()); `hide_init`: cover /proc/1,
    bubblewrap's own init, with an empty read-only tmpfs (one bubblewrap per program; not for a
    warm sandbox, whose programs are in PID namespaces of their own and whose supervisor mounts
    a fresh /proc for each, which the kernel refuses where part of the /proc it sees is
    covered). `view`: what of the host's files the program sees (view.py: the root read-only,
    the places of user data and sockets covered, `binds` and a few host folders bound back
    read-only); None: the view for this process now."""
    if view is None:
        view = current_view(for_nobody=os.geteuid() == 0)
    argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"] \
        if via_setpriv else []
    argv += ["bwrap",
             "--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY), "--disable-userns",
             "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
             "--unshare-cgroup-try", "--hostname", "sandbox",
             "--die-with-parent", "--new-session",
             "--ro-bind", "/", "/",
             "--dev", "/dev", "--remount-ro", "/dev",
             "--perms", "0700", "--size", str(limits.shm_size), "--tmpfs", "/dev/shm",
             "--proc", "/proc",
             *(["--perms", "0555", "--size", "4096", "--tmpfs", "/proc/1", "--remount-ro",
                "/proc/1"] if hide_init else []),
             "--perms", "0700", "--size", str(limits.tmp_size), "--tmpfs", "/tmp",
             *view.args(binds), "--chdir", "/tmp", "--clearenv"]
    for key, value in {**BASE_ENV, **(env or {})}.items():
        argv += ["--setenv", key, value]
    if program_fd is not None:
        argv += ["--perms", "0644", "--file", str(program_fd), f"/tmp/{name}"]
    if capabilities:
        argv += ["--cap-add", "ALL"]
    if seccomp_fd is not None:
        argv += ["--seccomp", str(seccomp_fd)]
    argv += ["--json-status-fd", str(status_fd)]
    if block_fd is not None:
        argv += ["--block-fd", str(block_fd), "--", *command]
    elif with_limits:
        argv += ["--", *limits.prlimit(), *command]
    else:
        argv += ["--", *command]
    return argv


def first_status(status_file) -> dict:
    """bubblewrap's first report on its --json-status-fd (written before it runs the command),
    read without blocking; {} if there is none."""
    ready = select.select([status_file], [], [], 0)[0]
    data = status_file.read(65536) if ready else b""
    line = (data or b"").partition(b"\n")[0]
    try:
        return json.loads(line) if line else {}
    except ValueError:
        return {}


def apply_limits(limits, info: dict, block_w: int) -> None:
    """Set the limits on the namespace's init (bwrap, blocked on its --block-fd), then let it go
    on: the program it starts inherits them. The limits are per sandbox: the process count is
    counted in the sandbox's own user namespace."""
    pid = info.get("child-pid")
    if not pid:
        raise OSError("bubblewrap did not report its child's pid")
    for which, value in ((resource.RLIMIT_NPROC, limits.processes),
                         (resource.RLIMIT_AS, limits.address_space),
                         (resource.RLIMIT_NOFILE, limits.open_files),
                         (resource.RLIMIT_CORE, 0)):
        resource.prlimit(pid, which, (value, value))
    os.write(block_w, b"1")


class Namespace:
    """A handle (pidfd) on the namespace's init, taken while bubblewrap is its parent."""

    def __init__(self):
        self.pidfd: int | None = None

    def attach(self, info: dict, outer_pid: int) -> None:
        pid = info.get("child-pid")
        if not pid:
            return
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            return
        if _parent_of(pid) == outer_pid:  # that process, not a reused pid
            self.pidfd = pidfd
        else:
            os.close(pidfd)

    def wait_gone(self, timeout: float = 2.0) -> None:
        """Return once the init has exited: by then the kernel has killed and reaped every other
        process of its PID namespace. bubblewrap exits as soon as the program's exit code is
        known, so its init may be orphaned and still exiting here; the host's init reaps it.
        When that is us (pid 1 in a container), reap it now so that zombies do not pile up."""
        if self.pidfd is None:
            return
        try:
            select.select([self.pidfd], [], [], timeout)
            try:
                os.waitid(os.P_PIDFD, self.pidfd, os.WEXITED | os.WNOHANG)
            except ChildProcessError:
                pass  # not our child: the host's init reaps it
        finally:
            os.close(self.pidfd)
            self.pidfd = None


def kill(proc: subprocess.Popen, info: dict) -> None:
    """Kill the namespace's init: the kernel then kills every process in its PID namespace, and
    the outer bwrap reaps it and exits. (Killing the outer bwrap first would orphan the dying
    init to the host's init.) Where bubblewrap has not reported its init (`info`), or that init
    is no longer its child (the outer bwrap died first), SIGKILL goes to bubblewrap's process
    group instead: bubblewrap is started in a session of its own (the executor's Ctrl-C never
    reaches it), and its init stays in that group (the program's `--new-session` is below it).
    An init cloned but not yet told to go on waits for bubblewrap for ever once bubblewrap is
    gone, before it could set its own death signal: only this kill ends it."""
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
                    return
            except OSError:
                pass
            finally:
                os.close(pidfd)
    # A group of that number is bubblewrap's while bubblewrap (our child) is not reaped or any
    # process of its group is left; gone, nothing gets the signal (as for any kill by pid, only
    # a pid reused meanwhile could be hit, and pids are handed out in turn)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.kill()


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat.rsplit(b")", 1)[1].split()[1])
