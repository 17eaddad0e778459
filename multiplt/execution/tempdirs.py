"""Temp folders of a run that the next run removes if the run was killed.

`multiplt execute` keeps its batch's files (the compiled init, the precompiled libraries, the
fork servers) in a `multiplt-exec-*` folder of TMPDIR, and the corpus build's type check writes
each batch to a `multiplt-pyright-*` folder; both remove it when done, but a process killed with
SIGKILL (a task killed at its timeout, the OOM killer) cannot, and on a long-lived worker TMPDIR
fills up. So such a folder is `Owned`: its creator holds an flock on the folder itself (an open
descriptor of it, close-on-exec) for as long as the folder is in use, and writes OWNER_FILE in
it only once it holds that lock; the kernel drops the lock when the process ends, however it
ends. Making one first sweeps its parent (`sweep`): a folder of the same prefix that belongs to
this user, holds OWNER_FILE and whose lock can be taken was left by a process that is gone, and
is removed, under that lock. A folder whose lock is held (a live run, in this process or another)
is kept, and so is one without OWNER_FILE (being made at this moment), unless neither it nor
anything directly in it has changed for LEGACY_AGE_S: such a folder was made by a version from
before folders had an owner (it cannot tell whether its creator is alive), and after a week it is
taken for left behind (modification times: a live older run keeps writing its files there).
Nothing is followed through a symlink: entries are opened with O_NOFOLLOW relative to
the parent's descriptor, and removed by shutil.rmtree relative to it, which never follows one.
OWNER_FILE names the creator's host (and pid), and only this host's folders are swept: an flock
holds on one host only where TMPDIR is a network file system (NFS) shared by several, so another
host's live folder would look free.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import socket
import stat
import tempfile
import threading
import time

LOG = logging.getLogger("multiplt.execution")

#: written in an owned folder once its creator holds the folder's lock: "HOST PID"
OWNER_FILE = ".multiplt-owner"
#: a folder without OWNER_FILE (made by an older version) unchanged this long is removed too
LEGACY_AGE_S = 7 * 24 * 3600


class Owned:
    """A new folder `prefix`XXXXXXXX in `parent` (default: TMPDIR), locked by this process until
    close(), which removes it. Stale folders of the same prefix in `parent` are swept first."""

    def __init__(self, prefix: str, parent: str | None = None):
        parent = parent or tempfile.gettempdir()
        sweep(prefix, parent)
        self.path = tempfile.mkdtemp(prefix=prefix, dir=parent)
        self._lock = threading.Lock()
        self._fd: int | None = None
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                               | os.O_CLOEXEC)
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # waits only for a sweep looking at it
            with open(os.path.join(self.path, OWNER_FILE), "x") as f:
                f.write(f"{socket.gethostname()} {os.getpid()}\n")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Remove the folder, then let go of its lock (so no sweep removes it under us)."""
        with self._lock:
            if self.path is None:
                return
            shutil.rmtree(self.path, ignore_errors=True)
            if self._fd is not None:
                os.close(self._fd)
            self.path, self._fd = None, None

    def __enter__(self) -> str:
        return self.path

    def __exit__(self, *exc) -> None:
        self.close()


def sweep(prefix: str, parent: str) -> int:
    """Remove the folders of `prefix` in `parent` that a process now gone left behind (see the
    module's docstring); how many were removed (logged when any were)."""
    try:
        parent_fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        with os.scandir(parent_fd) as entries:
            names = [e.name for e in entries if e.name.startswith(prefix)]
        removed = sum(_remove_if_stale(parent_fd, name) for name in names)
    finally:
        os.close(parent_fd)
    if removed:
        LOG.info("removed %d temp folder(s) %s* from %s, left by runs that were killed", removed,
                 prefix, parent)
    return removed


def _remove_if_stale(parent_fd: int, name: str) -> bool:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=parent_fd)
    except OSError:
        return False  # gone meanwhile, a symlink, or no folder
    try:
        held = os.fstat(fd)
        if held.st_uid != os.geteuid():
            return False  # another user's
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False  # its creator holds it: a live run
        try:
            owner = os.stat(OWNER_FILE, dir_fd=fd, follow_symlinks=False)
        except OSError:  # being made right now, or made before folders had an owner
            return _remove_if_legacy(parent_fd, name, fd, held)
        now = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        if not stat.S_ISREG(owner.st_mode) or (now.st_dev, now.st_ino) != (held.st_dev,
                                                                            held.st_ino):
            return False  # not ours, or replaced since it was opened
        if _owner_host(fd) != socket.gethostname():
            return False  # another host's (a shared TMPDIR): its lock does not reach here
        shutil.rmtree(name, dir_fd=parent_fd)
        return True
    except OSError as exc:
        LOG.warning("could not remove the stale temp folder %s: %s", name, exc)
        return False
    finally:
        os.close(fd)


def _remove_if_legacy(parent_fd: int, name: str, fd: int, held: os.stat_result) -> bool:
    """Remove the unowned folder `name` (open as `fd`, locked) when neither it nor any entry
    directly in it changed for LEGACY_AGE_S (see the module's docstring)."""
    newest = held.st_mtime
    with os.scandir(fd) as entries:
        for entry in entries:
            newest = max(newest, entry.stat(follow_symlinks=False).st_mtime)
    now = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino) or time.time() - newest < LEGACY_AGE_S:
        return False  # replaced since it was opened, or in use lately
    shutil.rmtree(name, dir_fd=parent_fd)
    return True


def _owner_host(folder_fd: int) -> str | None:
    """The host named in the folder's OWNER_FILE (a regular file, checked by the caller)."""
    try:
        fd = os.open(OWNER_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder_fd)
    except OSError:
        return None
    with os.fdopen(fd) as f:
        words = f.read(1024).split()
    return words[0] if len(words) == 2 else None
