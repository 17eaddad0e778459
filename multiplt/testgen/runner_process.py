"""Sandbox side of testgen, part 1 of 3: processes (standard library only).

Forking a child for one run, waiting for it with a limit, and cleaning up after it: every
descendant killed (this process is their subreaper), the shared writable places (the scratch
folder; /dev/shm in the sandbox) put back as they were and checked, SysV IPC objects removed.
`validate.runner_source()` joins runner_process.py, runner_measure.py and runner.py into the
one program the sandbox runs (see runner.py).
"""

import ctypes
import os
import select
import shutil
import signal
import stat
import sys
import time


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _protect_self(libc) -> None:
    if libc is not None:
        libc.prctl(4, 0, 0, 0, 0)    # PR_SET_DUMPABLE 0: no ptrace, no /proc/<pid>/fd or mem
        libc.prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER: orphans of children come to us


def _parents() -> dict:
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rfind(b")") + 2:].split()
            table[int(name)] = (int(fields[1]), fields[0])
    return table


def _kill_descendants() -> None:
    """SIGKILL and reap every descendant of this process (orphans included: we are subreaper)."""
    me = os.getpid()
    for _ in range(1000):
        table = _parents()
        children: dict = {}
        for pid, (ppid, _state) in table.items():
            children.setdefault(ppid, []).append(pid)
        todo, found = [me], []
        while todo:
            for child in children.get(todo.pop(), []):
                found.append(child)
                todo.append(child)
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid == 0:
                break
        if not found:
            return
        time.sleep(0.001)


def _remove_ipc(libc) -> None:
    if libc is None:
        return
    for kind, remove in (("shm", lambda i: libc.shmctl(i, 0, None)),
                         ("sem", lambda i: libc.semctl(i, 0, 0)),
                         ("msg", lambda i: libc.msgctl(i, 0, None))):
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            parts = row.split()
            if len(parts) > 1:
                remove(int(parts[1]))


SHM = "/dev/shm"


def _places(scratch: str, keep: str, own_namespaces: bool) -> list:
    """The writable places the children share, as they are before any child runs: the scratch
    folder (whose file `keep`, this program, stays) and, in the sandbox's own mount namespace,
    /dev/shm (the host's own without a sandbox: left alone). One tuple per place: (path,
    device, inode, owner, mode, name kept, its bytes)."""
    places = []
    for path, kept in ((scratch, keep), (SHM, None)):
        if path == SHM and (not own_namespaces or not os.path.isdir(SHM)):
            continue
        st = os.lstat(path)
        data = None
        if kept is not None:
            with open(os.path.join(path, kept), "rb") as f:
                data = f.read()
        places.append((path, st.st_dev, st.st_ino, st.st_uid, stat.S_IMODE(st.st_mode), kept,
                       data))
    return places


def _unlock(top: str) -> None:
    """Make every folder under `top` (links not followed) writable and listable by us, so what a
    child left there with a mode that forbids it can be removed."""
    for root, dirs, _files in os.walk(top):
        for name in dirs:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                try:
                    os.chmod(path, 0o700)
                except OSError:
                    pass


def _restore(place) -> bool:
    path, dev, ino, uid, mode, kept, data = place
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or (st.st_dev, st.st_ino, st.st_uid) != (dev, ino, uid):
        return False  # replaced, mounted over or given away: nothing we can undo
    if stat.S_IMODE(st.st_mode) != mode:
        os.chmod(path, mode)
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        return False
    _unlock(path)
    for name in os.listdir(path):
        if name == kept:
            continue
        target = os.path.join(path, name)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target, ignore_errors=True)
        else:
            try:
                os.unlink(target)
            except OSError:
                pass
    if [name for name in os.listdir(path) if name != kept]:
        return False
    if stat.S_IMODE(os.lstat(path).st_mode) != mode:
        return False
    if kept is not None:  # a child could leave a message in this program's own file
        with open(os.path.join(path, kept), "rb") as f:
            if f.read(len(data) + 1) != data:
                return False
    return True


def _wipe(places: list) -> bool:
    """Put every shared place back as it was before the first child: its mode restored, emptied
    (all but this program's file). False when that cannot be done or checked (a place replaced,
    something left that cannot be removed, this program's file changed): the runner must end,
    blaming the child that ran last, so the rest run again in a fresh program."""
    try:
        return all([_restore(place) for place in places])
    except Exception:  # noqa: BLE001 (whatever the child left that trips us: not clean)
        return False


class _Channel:
    """One pipe from a child: a short report (exception name, coverage JSON) read after it ends."""

    def __init__(self):
        self.r, self.w = os.pipe()

    def child_report(self, text: str) -> None:
        try:
            os.write(self.w, text.encode("utf-8", "replace"))
        except OSError:
            pass

    def read(self, limit: int) -> str:
        os.close(self.w)
        data = b""
        os.set_blocking(self.r, False)
        try:
            while len(data) < limit:
                chunk = os.read(self.r, 65536)
                if not chunk:
                    break
                data += chunk
        except BlockingIOError:
            pass
        os.close(self.r)
        return data[:limit].decode("utf-8", "replace")


def _in_child(work, results_fd: int, channel: _Channel, scratch: str, index: int) -> int:
    """Fork; in the child run work(channel, folder) and exit with its code; return the pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 70
    try:
        os.setsid()
        os.close(results_fd)
        os.close(channel.r)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        folder = os.path.join(scratch, f"run{index}")
        os.mkdir(folder)
        os.chdir(folder)
        code = work(channel, folder)
    except BaseException:  # noqa: BLE001
        pass
    os._exit(code)


def _wait(pid: int, timeout: float):
    """(exit code, timed out): the exit code as bubblewrap reports it (128 + signal)."""
    timed_out, status = False, None
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (kernel before 5.3): poll
        deadline = time.monotonic() + timeout
        while status is None:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = raw
            elif time.monotonic() > deadline:
                timed_out = True
                break
            else:
                time.sleep(0.001)
    else:
        timed_out = not select.select([fd], [], [], max(timeout, 0))[0]
        os.close(fd)
    if status is None:
        if timed_out:
            os.kill(pid, signal.SIGKILL)
        status = os.waitpid(pid, 0)[1]
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status), timed_out
    return os.WEXITSTATUS(status), timed_out
