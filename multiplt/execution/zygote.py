"""The supervisor of a warm sandbox: one long-lived process per worker, inside bubblewrap, that
starts each program in fresh namespaces of its own.

Why: starting bubblewrap costs about 6 ms per program (an exec, a user namespace, a network
namespace, a dozen mounts), more than a whole Lua test program runs. The sandbox that bubblewrap
builds (user namespace mapped to 65534, network namespace with only a loopback, read-only root,
private /dev, no new user namespaces) holds no state of one program that another could see, so
one per worker is started once; inside it this supervisor gives every program what must be its
own, for a fraction of a millisecond:

  compiled (init.c, native.py):
  supervisor --posix_spawn--> helper --unshare(PID, mount, IPC) + fork--> init (pid 1) --> program
  else:
  supervisor --clone(new PID, mount and IPC namespaces)--> init (pid 1) --posix_spawn--> program

The init mounts a fresh size-capped tmpfs at /tmp (holding the program file) and another at
/dev/shm (the program's only writable places), a fresh /proc for its PID namespace and the
read-only library cache; it empties every capability set, sets the resource limits, and starts
the program (pid 2, own session, stdin /dev/null). When the program exits, the init reports its
wait status and exits, and the kernel kills whatever the program left in the namespace. At the
deadline the supervisor kills the init, with the same effect, and answers once the namespace is
empty. Exit codes read as bubblewrap's (128 + signal for a program killed by a signal), so
verdicts do not depend on the path taken. The supervisor keeps the sandbox user namespace's
capabilities (bubblewrap's --cap-add ALL: ambient, so the compiled helper has them too);
programs never have any.

The program cannot reach the supervisor: it is in a child PID namespace (the supervisor has no
pid there), holds none of its file descriptors, and has no capabilities. Nor can it reach its
init, of the same uid: the init is not dumpable (PR_SET_DUMPABLE 0 before the program exists;
init.c, _start_python), so the kernel refuses a process of that uid without capabilities to
trace it, open its /proc/1/mem or /proc/1/fd (the status pipe) or take its descriptors; a
system call filter (seccomp.py) denies ptrace, process_vm_* and pidfd_getfd besides. The
executor kills the whole sandbox if the supervisor stops answering, and starts a new one.

The status pipe (init.c's header has its lines) is read strictly (_report): "E" before "N" is
the platform's failure (the program did not exist yet); after "N" exactly one "S" line is
believed and anything else is the program's doing, scored as a failure, never an error that
would be retried and then stop the batch. A "P" line is believed only for a child of pid 1's
known parent (_Init).

Pre-loaded runtimes (forkserver.py says why and what each language does): where the request
names a `server` (an argv), the supervisor keeps one such process per server argv, started once
with the program environment and a SOCK_SEQPACKET control socket as fd 3; it loads the runtime
and its test library and then runs init.c's code as a library (multiplt_serve): each request is
a clone of it into new PID, mount and IPC namespaces (pid 1, which the server waits for, as the
compiled helper above does) that takes the same steps as the compiled init, except that the
program (pid 2) is a fork that returns into the loaded runtime instead of an exec:

  supervisor --request + fds--> server --clone(new PID, mount, IPC)--> init (pid 1) --fork--> program

The server itself runs no program code, so whatever a program changes in its copy of the runtime
is gone with its namespace. A server that dies is started again for the next program; this
program's answer is an error (never scored, retried).

Memory cap (limits.memory, bytes): while it waits on a program, the supervisor sums the resident
memory of every process below the program's pid 1 (pid 1 itself, ours, not counted), and the
memory files (memfd) they hold open, every MEMORY_POLL_S (MemoryWatch: /proc files that the
supervisor, of the programs' uid, may read, so no protocol with pid 1 and nothing the program
can write into is involved; the descriptors are looked through FILE_SCAN_BUDGET_S at a time,
_MemoryFiles); over the cap, it kills pid 1 as at the deadline, and the answer is
exit code 137 (128 + SIGKILL), memory_exceeded true and a "sandbox: killed for exceeding the
memory cap" line at the end of stderr.

Protocol (stdin/stdout of the supervisor): frames of a 4-byte big-endian length and a UTF-8 JSON
object. The request: argv, env, name, program, timeout, limits {address_space, processes,
open_files, output, tmp_size, shm_size, memory}, lib (a directory to mount read-only at
lib_mount) or null, init (the compiled helper's path) or null, server (an argv) or null. The
answer:
exit_code, stdout, stderr, timed_out, memory_exceeded, duration, pid_namespace; or error (the
platform failed).
A request of server, env and start_only: true starts that server ahead of its first program and
is answered started: true (or error).

This file runs as `python3 -I -S -c <this source>`: standard library only, no package imports.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import time

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWPID = 0x00020000, 0x08000000, 0x20000000
MS_NOSUID, MS_NODEV, MS_NOEXEC = 2, 4, 8
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 47, 4
PR_SET_DUMPABLE = 4
# clone(2): flags first on both; with no new stack and no tids the argument order does not matter
CLONE_SYSCALL = {"x86_64": 56, "aarch64": 220}
_MACHINE = os.uname().machine
_SYS_CAPGET, _SYS_CAPSET = {"x86_64": (125, 126), "aarch64": (90, 91)}.get(_MACHINE, (-1, -1))
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
CHUNK = 1 << 16
KILL_GRACE_S = 2.0
SERVER_START_S = 120.0
#: how often a running program's memory is summed (MemoryWatch), at most: a sum that takes
#: longer spaces the next one out to MEMORY_DUTY times its own cost
MEMORY_POLL_S = 0.025
MEMORY_DUTY = 20
#: the most one sum spends on the program's descriptors (_MemoryFiles): each is read apart
#: (about 5-10 us), and a program may hold 64 processes x Limits.open_files of them, so a look
#: through them all is spread over as many sums as it takes instead of delaying the next one
FILE_SCAN_BUDGET_S = 0.001
_PAGE = os.sysconf("SC_PAGE_SIZE")

# PyDLL: the GIL stays held across clone(), so the child's copy of it is held by its one thread.
_libc = ctypes.PyDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                        ctypes.c_ulong]


def supported() -> bool:
    return _MACHINE in CLONE_SYSCALL


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)),
           f"mount {target}")


def _clone(flags: int) -> int:
    return _check(_libc.syscall(ctypes.c_long(CLONE_SYSCALL[_MACHINE]),
                                ctypes.c_long(flags | signal.SIGCHLD), ctypes.c_long(0),
                                ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0)), "clone")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def drop_capabilities() -> None:
    """In the init, before the program starts: nothing it execs may hold or gain a capability
    (ambient, bounding and inheritable sets emptied; the program runs as a non-root uid, so
    exec leaves it none of the rest; no_new_privs is set as well, so file capabilities do not
    apply either)."""
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient caps")
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap} from the bounding set")
    header, data = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    _check(_libc.syscall(ctypes.c_long(_SYS_CAPGET), ctypes.byref(header), data), "capget")
    for d in data:
        d.inheritable = d.permitted = d.effective = 0
    _check(_libc.syscall(ctypes.c_long(_SYS_CAPSET), ctypes.byref(header), data), "capset")


def _init(req: dict, out_w: int, err_w: int, status_w: int) -> None:
    """pid 1 of the program's namespaces (a clone of the supervisor). Never returns."""
    limits = req["limits"]
    # Opened in this mount namespace (a bind needs a source mount of the caller's namespace),
    # before the new /tmp hides it.
    lib_fd = os.open(req["lib"], os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) \
        if req.get("lib") else None
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={int(limits['tmp_size'])},mode=0700")
    _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV,
           f"size={int(limits['shm_size'])},mode=0700")
    if lib_fd is not None:
        target = req["lib_mount"]
        os.mkdir(target, 0o755)
        # A bind of the read-only bind that bubblewrap made of it: read-only as well.
        _mount(f"/proc/self/fd/{lib_fd}", target, None, MS_BIND | MS_REC)
        os.close(lib_fd)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    fd = os.open(f"/tmp/{req['name']}", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    data = req["program"].encode("utf-8")
    while data:
        data = data[os.write(fd, data):]
    os.close(fd)
    os.chdir("/tmp")
    drop_capabilities()
    for which, value in ((resource.RLIMIT_AS, limits["address_space"]),
                         (resource.RLIMIT_NPROC, limits["processes"]),
                         (resource.RLIMIT_NOFILE, limits["open_files"]),
                         (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(which, (value, value))
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    actions = [(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
               (os.POSIX_SPAWN_DUP2, err_w, 2)]
    # The last line before the program exists; after it only one "S" line is ours (_report).
    os.write(status_w, f"N {os.stat('/proc/self/ns/pid').st_ino}\n".encode())
    try:
        try:
            child = os.posix_spawnp(req["argv"][0], req["argv"], req["env"],
                                    file_actions=actions, setsid=True)
        except OSError as exc:  # as bubblewrap: the command could not be executed
            os.write(err_w, f"sandbox: cannot execute {req['argv'][0]}: {exc.strerror}\n".encode())
            os.write(status_w, f"S {127 << 8}\n".encode())
            os._exit(0)
        os.close(out_w)
        os.close(err_w)
        while True:
            pid, status = os.waitpid(-1, 0)  # as init: reap orphans too, until the program is done
            if pid == child:
                break
    except BaseException as exc:  # noqa: BLE001 - our own failure after "N": a negative status
        os.write(status_w, f"S {-(getattr(exc, 'errno', None) or 5)}\n".encode())
        os._exit(1)
    os.write(status_w, f"S {status}\n".encode())
    os._exit(0)  # the kernel now kills whatever the program left in this namespace


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


class _Stream:
    def __init__(self, limit: int):
        self.limit, self.kept = limit, bytearray()

    def add(self, data: bytes) -> None:
        room = self.limit - len(self.kept)
        if room > 0:
            self.kept += data[:room]

    def text(self) -> str:
        return self.kept.decode("utf-8", errors="replace")


def _start_python(req: dict, out_w: int, err_w: int, status_w: int) -> int:
    """The program's init as a clone of this process (where no compiled init exists)."""
    pid = _clone(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC)
    if pid == 0:
        try:
            # First: no process of the program's uid may trace this one or reach its memory
            # and descriptors (the status pipe); the program, an exec, is dumpable again.
            _check(_libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")
            os.close(_PROTOCOL_IN)
            os.close(_PROTOCOL_OUT)
            _init(req, out_w, err_w, status_w)
        except BaseException as exc:  # noqa: BLE001 - report anything, then leave
            try:
                os.write(status_w, f"E {type(exc).__name__}: {exc}\n".encode()[:4000])
            finally:
                os._exit(1)
        os._exit(0)
    return pid


def _program_memfd(program: str) -> int:
    """An anonymous file holding the program's text, at offset 0 (the init's stdin)."""
    text = os.memfd_create("program", os.MFD_CLOEXEC)
    try:
        data = program.encode("utf-8")
        while data:
            data = data[os.write(text, data):]
        os.lseek(text, 0, os.SEEK_SET)
    except BaseException:
        os.close(text)
        raise
    return text


def _init_args(req: dict) -> list[str]:
    """The per-program init's arguments (init.c), the same in both of its modes."""
    limits = req["limits"]
    return [str(int(limits["tmp_size"])), str(int(limits["shm_size"])),
            str(int(limits["address_space"])), str(int(limits["processes"])),
            str(int(limits["open_files"])), req.get("lib") or "", req["lib_mount"], req["name"]]


def _start_native(req: dict, out_w: int, err_w: int, status_w: int) -> int:
    """The program's init from the compiled helper (init.c): no copy of this process."""
    text = _program_memfd(req["program"])
    try:
        argv = [req["init"], *_init_args(req), *req["argv"]]
        return os.posix_spawn(req["init"], argv, req["env"], file_actions=[
            (os.POSIX_SPAWN_DUP2, text, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2), (os.POSIX_SPAWN_DUP2, status_w, 3)])
    finally:
        os.close(text)


def _int(text: bytes, low: int = -2**31, high: int = 2**31) -> int | None:
    """A status line's number as init.c prints it (a C int unless told), or None."""
    try:
        value = int(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if str(value).encode() == text and low <= value < high else None


def _pids(status: bytes) -> list[int]:
    """The pids that "P" lines on the status pipe name (one, unless something forged one)."""
    return [pid for line in bytes(status).split(b"\n")[:-1] if line.startswith(b"P ")
            and (pid := _int(line[2:])) is not None and pid > 0]


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _proc_file(path: str, whole: bool = False) -> bytes | None:
    """A /proc file's text: its first 4 KiB (one read: all of a stat file), or with `whole`
    all of it; None where it cannot be read (its process is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        text = data = os.read(fd, 4096)
        while whole and data:
            data = os.read(fd, 4096)
            text += data
        return text
    except OSError:
        return None
    finally:
        os.close(fd)


def _stat(pid) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command name (index 0 is the state), or None."""
    text = _proc_file(f"/proc/{pid}/stat")
    fields = text.rsplit(b")", 1) if text else []
    return fields[1].split() if len(fields) == 2 else None


_CHILDREN_FILES: list = []


def _children_files() -> bool:
    """Whether the kernel lists each thread's children (/proc/PID/task/TID/children, built with
    CONFIG_PROC_CHILDREN); else the process tree is found by every process's parent."""
    if not _CHILDREN_FILES:
        _CHILDREN_FILES.append(os.path.exists(f"/proc/self/task/{os.getpid()}/children"))
    return _CHILDREN_FILES[0]


def _processes_below(root: int, include_root: bool) -> dict[int, int]:
    """{pid: resident pages} of every descendant of `root` (and of `root` with `include_root`).
    Their stat files are world-readable, so this works whoever the caller is. Processes found
    through the children files of each thread where the kernel has them, else through the
    parent field of every process in this /proc (in a warm sandbox: only that sandbox's
    processes). A process that was orphaned (its parent exited) is found only below its new
    parent: in a program's own PID namespace that is its pid 1, so nothing of the program
    escapes the sum there."""
    pages: dict = {}
    if _children_files():
        todo, seen = [root], set()
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            fields = _stat(pid)
            if fields is None:
                continue
            if pid != root or include_root:
                pages[pid] = int(fields[21])
            try:
                tids = [str(pid)] if fields[17] == b"1" else os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                listed = _proc_file(f"/proc/{pid}/task/{tid}/children", whole=True) or b""
                todo += map(int, listed.split())
        return pages
    children: dict = {}
    every: dict = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (fields := _stat(name)) is not None:
            children.setdefault(int(fields[1]), []).append(int(name))
            every[int(name)] = int(fields[21])
    if include_root and root in every:
        pages[root] = every[root]
    todo, seen = list(children.get(root, ())), {root}
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            if pid in every:
                pages[pid] = every[pid]
            todo += children.get(pid, ())
    return pages


def _descriptors(pids):
    """The paths (/proc/PID/fd/N) of the open descriptors of the processes `pids` (a process
    gone meanwhile has none). Read as they are consumed (scandir: a getdents of about a
    thousand at a time), not listed whole: listing 15,000 takes 15-30 ms."""
    for pid in pids:
        try:
            with os.scandir(f"/proc/{pid}/fd") as entries:
                for entry in entries:
                    yield entry.path
        except OSError:
            continue


def _memory_file(path: str):
    """((st_dev, st_ino), bytes allocated) of the memory file that descriptor `path` names, or
    None: another kind of file, or closed meanwhile."""
    try:
        if os.readlink(path).startswith("/memfd:"):
            st = os.stat(path)
            return (st.st_dev, st.st_ino), st.st_blocks * 512
    except OSError:
        pass
    return None


class _MemoryFiles:
    """The memory files (memfd_create) that a program's processes hold open, each file once
    however many hold it: filled with write() and never mapped, their pages are in no process's
    RSS, and nothing else bounds them (mapped pages of such a file count in RSS as well, once
    per mapping). Not seen (docs/execution.md): a file held only elsewhere (sent over a unix
    socket and not received, mapped after its descriptor was closed), and the descriptors of a
    process that made itself not dumpable (only host root may list them). Found a slice at a
    time so that a sum costs at most about FILE_SCAN_BUDGET_S however many descriptors they hold.

    Each sum first re-reads the size of every file already found (one stat through the
    descriptor it was found at, for at most half the budget, the longest unread first), so a
    file found keeps counting as it grows; then it goes on reading descriptors where the last
    sum stopped, until the budget is spent. A look that reaches the last descriptor forgets the
    files it did not see (closed meanwhile; until then a closed file still counts, at its last
    size) and the next sum starts a new look with the processes it finds then. A program of
    about a hundred descriptors is looked through whole at every sum, as before; past that a
    new file is found within one look, spread over (descriptors x 5-10 us) / budget sums."""

    def __init__(self):
        #: (st_dev, st_ino) -> [bytes allocated, the descriptor path it was found at]
        self.known: dict = {}
        self._seen: set = set()  # the files that the look under way found
        self._look = None        # the look under way: an iterator of descriptor paths

    def total(self, pids) -> int:
        start = time.monotonic()
        self._refresh(start + FILE_SCAN_BUDGET_S / 2)
        if self._look is None:
            self._look, self._seen = _descriptors(list(pids)), set()
        stop = start + FILE_SCAN_BUDGET_S
        for path in self._look:  # at least one descriptor per sum, so every look ends
            found = _memory_file(path)
            if found is not None:
                self.known[found[0]] = [found[1], path]
                self._seen.add(found[0])
            if time.monotonic() >= stop:
                break
        else:  # the look is done: what it did not see is closed
            self.known = {key: self.known[key] for key in self._seen}
            self._look = None
        return sum(size for size, _ in self.known.values())

    def _refresh(self, stop: float) -> None:
        """The size of each file found, read again through its descriptor (where that still
        names it), until `stop`; each one read moves to the end of `known`, so that a sum that
        runs out of time starts where the last one stopped."""
        for _ in range(len(self.known)):
            if time.monotonic() >= stop:
                return
            key = next(iter(self.known))
            entry = self.known.pop(key)
            found = _memory_file(entry[1])
            if found is not None and found[0] == key:
                entry[0] = found[1]
            self.known[key] = entry


class MemoryWatch:
    """Sums a program's memory every MEMORY_POLL_S while its runner waits on it, and says when
    the sum is over `cap`: `due`, when the next sum is due (in time.monotonic()); `over(root,
    include_root)`, True once the sum of that tree exceeds the cap (`used` then holds it). The
    sum: the resident memory (RSS: /proc/PID/stat's rss, in pages) of every descendant of
    `root`, and of `root` with `include_root` (_processes_below), in which a page mapped by two
    of them (shared with a parent after fork, a shared library) counts twice, plus the memory
    files they hold open, each once, looked for within a time budget per sum (_MemoryFiles). A sum that takes longer than MEMORY_POLL_S / MEMORY_DUTY spaces
    the next one out, so the watch never takes more than about 1/MEMORY_DUTY of a core."""

    def __init__(self, cap: int):
        self.cap, self.used = cap, 0
        self.due = time.monotonic() + MEMORY_POLL_S
        self.files = _MemoryFiles()

    def over(self, root: int | None, include_root: bool = False) -> bool:
        start = time.monotonic()
        used = 0
        if root:
            pages = _processes_below(root, include_root)
            used = sum(pages.values()) * _PAGE + self.files.total(pages)
        now = time.monotonic()
        self.due = now + max(MEMORY_POLL_S, (now - start) * MEMORY_DUTY)
        if used > self.cap:
            self.used = used
            return True
        return False

    def message(self) -> str:
        return memory_message(self.used, self.cap)


def memory_message(used: int, cap: int) -> str:
    """The end of stderr of a program killed for holding more memory than its cap."""
    return (f"\nsandbox: killed for exceeding the memory cap: the program's processes held "
            f"{-(-used >> 20)} MiB resident together, the cap is {cap / 2**20:.0f} MiB\n")


class _Init:
    """The namespace's pid 1: our child (Python init), or a child of `parent` (our child, the
    compiled init's helper, or the language's server, which reaps it only once its namespace is
    empty) whose pid a "P" line reports. A "P" line is believed only for a process whose parent
    is `parent`, so no line on the pipe makes us kill anything else."""

    def __init__(self, child: int | None, parent: int | None):
        self.child, self.parent = child, parent
        self._pid1: int | None = None

    def pid1(self, status: bytes) -> int | None:
        """pid 1's pid here (to sum the memory of what runs below it), or None while no "P"
        line names a child of `parent` yet."""
        if self.parent is None:
            return self.child
        if self._pid1 is None:
            self._pid1 = next((pid for pid in _pids(status) if _parent_of(pid) == self.parent),
                              None)
        return self._pid1

    def kill(self, status: bytes) -> bool:
        """SIGKILL pid 1 (the kernel then kills its whole namespace); False where it is not
        known (no child of ours, no "P" line): a "P" pid that is gone has exited already."""
        pids = _pids(status) if self.parent is not None else []
        for pid in pids:
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                continue
            try:
                if _parent_of(pid) == self.parent:  # that process, not another or a reused pid
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    return True
            except OSError:
                pass
            finally:
                os.close(pidfd)
        if self.child is not None:  # the init itself, or its parent: then its parent-death signal
            os.kill(self.child, signal.SIGKILL)
            return True
        return bool(pids)


def _pump(streams: dict, status: bytearray, deadline: float, watch: MemoryWatch | None = None,
          root=lambda: None) -> str:
    """Read the program's pipes until all are closed ("closed"), the deadline passes
    ("deadline") or, with a `watch`, the memory of the processes below `root()` (pid 1, once
    known) is over its cap ("memory")."""
    while streams:
        now = time.monotonic()
        if now >= deadline:
            return "deadline"
        if watch is not None and now >= watch.due and watch.over(root()):
            return "memory"
        wait = deadline if watch is None else min(deadline, watch.due)
        ready, _, _ = select.select(list(streams), [], [], max(0.0, wait - now))
        for fd in ready:
            data = os.read(fd, CHUNK)
            if not data:
                del streams[fd]
                os.close(fd)
            elif streams[fd] is None:
                status += data
            else:
                streams[fd].add(data)
    return "closed"


class _Server:
    """A pre-loaded runtime, our child, that forks a program per request (see the docstring)."""

    def __init__(self, argv: list, env: dict):
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        log = os.memfd_create("server-stderr", os.MFD_CLOEXEC)  # its messages, should it fail
        try:
            self.pid = os.posix_spawnp(argv[0], argv, env, file_actions=[
                (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, null, 1),
                (os.POSIX_SPAWN_DUP2, log, 2), (os.POSIX_SPAWN_DUP2, theirs.fileno(), 3)])
            theirs.close()
            ready, _, _ = select.select([self.sock], [], [], SERVER_START_S)
            if not ready or self.sock.recv(16) != b"R":
                self.close()
                os.lseek(log, 0, os.SEEK_SET)
                why = os.read(log, 1 << 20)[-1000:].decode("utf-8", "replace").strip()
                raise RuntimeError(f"the pre-loaded runtime {argv[0]} did not start: {why}")
        finally:
            os.close(null)
            os.close(log)
            theirs.close()

    def alive(self) -> bool:
        return os.waitpid(self.pid, os.WNOHANG)[0] == 0

    def close(self) -> None:
        self.sock.close()  # it leaves at the end of its requests
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        except ProcessLookupError:
            os.waitpid(self.pid, 0)


_SERVERS: dict = {}


def _server(req: dict) -> _Server:
    key = json.dumps([req["server"], req["env"]])
    server = _SERVERS.get(key)
    if server is not None and not server.alive():
        server.close()
        server = None
    if server is None:
        server = _SERVERS[key] = _Server(req["server"], req["env"])
    return server


def _start_forked(req: dict, out_w: int, err_w: int, status_w: int) -> int:
    """The program as a fork of its language's pre-loaded runtime (init.c, fork-server mode);
    the server's pid (the parent of the program's pid 1)."""
    server = _server(req)  # started (and ready) before the program's clock started
    text = _program_memfd(req["program"])
    try:
        args = [*_init_args(req), "-"]
        try:
            socket.send_fds(server.sock, [b"\0".join(a.encode() for a in args)],
                            [text, out_w, err_w, status_w])
        except OSError:
            del _SERVERS[json.dumps([req["server"], req["env"]])]
            server.close()
            raise
    finally:
        os.close(text)
    return server.pid


def _await_pid(status_r: int, status: bytearray, deadline: float) -> None:
    """Read the status pipe until the namespace's init is known (its "P" line) or the deadline."""
    while not _pids(status) and time.monotonic() < deadline:
        if not select.select([status_r], [], [], max(0.0, deadline - time.monotonic()))[0]:
            return
        data = os.read(status_r, CHUNK)
        if not data:
            return
        status += data


#: the end of stderr where the program tampered with its init's report (_report)
TAMPERED = "\nsandbox: the program wrote to its init's status pipe; its exit status is unknown\n"


def _report(status: bytes, timed_out: bool) -> dict:
    """What the status pipe says (init.c's header has the lines): {"wait": the program's wait
    status or None (timed out), "pid_namespace"}, {"error": why} where the platform failed (the
    program never started, or its init failed: retried, never scored), or {"tampered": True,
    ...} where anything but one "S" line follows "N". The program exists only once "N" is
    written, so nothing before it can be the program's, and whatever it could write after it
    can only add a line or spoil pid 1's own "S" line: never an error of the sandbox, which
    would stop the whole batch after a few tries."""
    lines = bytes(status).split(b"\n")
    tampered = lines.pop() != b""  # a line left unfinished
    pid_seen, ns, error, wait = False, None, None, None
    for line in lines:
        kind, _, value = line.partition(b" ")
        number = _int(value)
        if kind == b"P" and number is not None and not pid_seen:
            pid_seen = True  # from pid 1's parent (or pid 1), at any point
        elif kind == b"E" and ns is None and error is None:
            error = value.decode("utf-8", "replace")
        elif kind == b"N" and ns is None and error is None and \
                (inode := _int(value, 0, 2**64)) is not None:
            ns = inode
        elif kind == b"S" and number is not None and ns is not None and wait is None:
            wait = number
        else:
            tampered = True
    if timed_out:
        return {"wait": None, "pid_namespace": ns}
    if ns is None:  # the program never started: all of this is the platform's
        return {"error": "sandbox init failed: " + (error or "it exited without reporting why")}
    if tampered:
        return {"tampered": True, "pid_namespace": ns}
    if wait is None:
        return {"error": "sandbox init exited without reporting the program's status"}
    if wait < 0:
        return {"error": f"sandbox init could not run the program: {os.strerror(-wait)}"}
    return {"wait": wait, "pid_namespace": ns}


def run(req: dict) -> dict:
    """Run one program; the answer frame. A request with `start_only` runs nothing: it starts
    the request's server (if not already running) and answers `started`."""
    if req.get("start_only"):
        _server(req)
        return {"started": True}
    limit = int(req["limits"]["output"])
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    if req.get("server"):
        try:
            _server(req)  # the runtime's own start-up is not the program's time
        except BaseException:
            for fd in (out_r, out_w, err_r, err_w, status_r, status_w):
                os.close(fd)
            raise
    start = time.monotonic()
    deadline = start + float(req["timeout"])
    try:
        if req.get("server"):  # pid 1 is no child of ours: the server's
            pid, parent = None, _start_forked(req, out_w, err_w, status_w)
        elif req.get("init"):  # the helper, pid 1's parent
            pid = parent = _start_native(req, out_w, err_w, status_w)
        else:  # pid 1 itself
            pid, parent = _start_python(req, out_w, err_w, status_w), None
    except BaseException:
        for fd in (out_r, err_r, status_r):
            os.close(fd)
        raise
    finally:
        for fd in (out_w, err_w, status_w):
            os.close(fd)
    init = _Init(pid, parent)
    out, err, status = _Stream(limit), _Stream(limit), bytearray()
    streams = {out_r: out, err_r: err, status_r: None}
    cap = req["limits"].get("memory")
    watch = MemoryWatch(int(cap)) if cap else None
    ended = _pump(streams, status, deadline, watch, lambda: init.pid1(status))
    timed_out, over_cap = ended == "deadline", ended == "memory"
    if timed_out and pid is None and status_r in streams:
        _await_pid(status_r, status, time.monotonic() + KILL_GRACE_S)
    if timed_out or over_cap:
        # With the namespace's init the kernel kills everything in it; our child exits once
        # that is done (it is the init, or the compiled init's parent, which reaps it).
        if not init.kill(status):  # nothing to kill it by: the executor kills the whole sandbox
            for fd in streams:
                os.close(fd)
            return {"error": "a forked program's init never reported its pid"}
        _pump(streams, status, time.monotonic() + KILL_GRACE_S)
    for fd in streams:
        os.close(fd)
    if pid is not None:
        os.waitpid(pid, 0)
    duration = time.monotonic() - start
    report = _report(status, timed_out or over_cap)
    if "error" in report:
        return report
    if over_cap:  # killed as at the deadline, but not a timeout: exit code 128 + SIGKILL
        stderr, exit_code = err.text() + watch.message(), 128 + signal.SIGKILL
    else:
        stderr = err.text() + (TAMPERED if report.get("tampered") else "")
        exit_code = -1 if timed_out else 1 if report.get("tampered") else _exit_code(report["wait"])
    return {"exit_code": exit_code, "stdout": out.text(), "stderr": stderr,
            "timed_out": timed_out, "memory_exceeded": over_cap, "duration": duration,
            "pid_namespace": report["pid_namespace"]}


def _read_exact(fd: int, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        data = os.read(fd, n - len(buf))
        if not data:
            return None
        buf += data
    return bytes(buf)


def read_frame(fd: int):
    head = _read_exact(fd, 4)
    if head is None:
        return None
    body = _read_exact(fd, struct.unpack("!I", head)[0])
    return None if body is None else json.loads(body)


def write_frame(fd: int, obj) -> None:
    body = json.dumps(obj).encode("utf-8")
    data = struct.pack("!I", len(body)) + body
    while data:
        data = data[os.write(fd, data):]


_PROTOCOL_IN = _PROTOCOL_OUT = -1


def main() -> None:
    global _PROTOCOL_IN, _PROTOCOL_OUT
    # The protocol moves off fds 0/1 (dup: not inherited); 0 and 1 become /dev/null.
    _PROTOCOL_IN, _PROTOCOL_OUT = os.dup(0), os.dup(1)
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    # Each program's init is a copy of this process: no garbage collection (it would touch, and
    # so copy, every page of the heap in the copy); the loop below allocates no cycles anyway.
    gc.disable()
    gc.freeze()
    # Once: a mount namespace of our own (bubblewrap's belongs to a user namespace above ours),
    # where every mount is private, so that the programs' copies of it are private too and
    # nothing mounted for a program propagates back here.
    _check(_libc.unshare(CLONE_NEWNS), "unshare the mount namespace")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    write_frame(_PROTOCOL_OUT, {"ready": os.getpid()})
    while True:
        req = read_frame(_PROTOCOL_IN)
        if req is None:
            return
        try:
            answer = run(req)
        except Exception as exc:  # noqa: BLE001 - a platform failure, reported as such
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        write_frame(_PROTOCOL_OUT, answer)


if __name__ == "__main__":
    sys.exit(main())
