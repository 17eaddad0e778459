"""Dropping root for one thread only, so that the sandbox can be started without an extra exec.

Started as root, the sandbox must run as uid 65534 (the kernel enforces no process limit for
root). `setpriv` does that but costs an exec (about 2 ms of CPU, as much as a whole Lua program),
and Popen(user=...) cannot use vfork, so it copies the executor for every program. Linux keeps
credentials per thread; glibc's setuid() applies them to every thread of the process, but the raw
system calls change only the calling thread. A thread dropped this way spawns bubblewrap with
vfork, directly as 65534, and may also set resource limits on its own sandboxes (same uid), which
root without CAP_SYS_RESOURCE could not.
"""

from __future__ import annotations

import ctypes
import os
import platform

# (setgroups, setresuid, setresgid) system call numbers
_SYSCALLS = {"x86_64": (116, 117, 119), "aarch64": (159, 147, 149)}


def supported() -> bool:
    return platform.machine() in _SYSCALLS


def drop_this_thread(uid: int, gid: int) -> None:
    """Set this thread's real, effective and saved ids to uid/gid, with no supplementary groups.
    Irreversible for the thread. Raises OSError when the kernel refuses."""
    setgroups, setresuid, setresgid = _SYSCALLS[platform.machine()]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    for call, args in ((setgroups, (0, None)), (setresgid, (gid, gid, gid)),
                       (setresuid, (uid, uid, uid))):
        if libc.syscall(ctypes.c_long(call), *(ctypes.c_long(a) if isinstance(a, int) else a
                                                for a in args)) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"dropping the thread to uid {uid}: {os.strerror(err)}")
    if os.geteuid() != uid or os.getegid() != gid:  # per thread: these are the raw syscalls
        raise OSError(f"thread still runs as uid {os.geteuid()} gid {os.getegid()}")
