"""The system call filter every sandboxed program runs under (bubblewrap's `--seccomp FD`).

A program shares its uid (65534) with its PID namespace's init, which holds what decides its
verdict: in a bubblewrap per program, bubblewrap's own init, whose eventfd carries the exit code
out; in a warm sandbox, init.c's pid 1 and its status pipe (there pid 1 is not dumpable, which
already keeps a process of that uid out: init.c). The kernel lets a process of the same uid
trace a dumpable one, read and write its memory and take its file descriptors. This filter
makes the system calls that reach another process's memory or descriptors fail with EPERM:
ptrace, process_vm_readv, process_vm_writev and pidfd_getfd. (/proc/PID/mem and /proc/PID/fd
are not system calls: in a bubblewrap per program, pid 1's /proc entry is covered by an empty
read-only mount instead, bwrap.py.)

It also refuses (EPERM) two ways to hold memory that the memory cap (zygote.MemoryWatch) cannot
see and nothing else bounds: System V shared memory (shmget: a segment stays, unmapped, after
its last detach; the kernel's limits on it, kernel.shmall and shmmax, are per IPC namespace, but
only the uid its user namespace maps to 0, host root where it maps none, may set them, and the
sandbox maps 65534 alone, to an unprivileged uid) and secret memory (memfd_secret: pages written
through a mapping stay in the file once unmapped, in no process's RSS, and fstat reports none).
No runtime installed here calls either (checked with strace); POSIX shared memory (/dev/shm, a
size-capped tmpfs of the program's own) is what Python's multiprocessing uses.

It refuses (EPERM) the kernel keyrings, too: add_key, request_key and keyctl. Keyrings are the
kernel's, not the mount or PID namespace's: a user's keyring is shared by every process of its
uid, so one program left a key in it for the next program of the same warm sandbox, and a
program of one bubblewrap found another sandbox's keyring in /proc/keys and added a key to it
(Docker's default seccomp profile refuses these three as well). And, for defence in depth, a few
calls that no runtime here needs and that widen what the program reaches of the kernel:
io_uring_setup, io_uring_enter and io_uring_register (asynchronous I/O that bypasses the
filter's view of each operation), bpf, perf_event_open and userfaultfd. The docker stage runs
its container with seccomp=unconfined, so this filter is the only one. Python, Racket, R, OCaml
and Lua pass their reference solutions under it; Julia's libuv, not installed here, uses
io_uring where io_uring_setup succeeds and falls back to its thread pool where it fails.

The filter is a classic BPF program, assembled here (no libseccomp). It knows x86_64 and
aarch64 and checks `seccomp_data.arch` first: a system call of any other ABI (i386 through
`int $0x80` on x86_64, 32-bit ARM on aarch64, x32 on x86_64, whose numbers have bit 30 set)
kills the process, since its numbers differ and no program here needs one. On a machine of
another architecture there is no filter (`program()` and `sandbox_fd()` are None, and a warning
is logged once): the numbers are unknown, and a filter for the two known ones would kill every
program there. The warm sandbox does not start on such a machine either (zygote.supported()).
"""

from __future__ import annotations

import errno
import logging
import os
import struct

LOG = logging.getLogger("multiplt.execution")

# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6];
_NR, _ARCH = 0, 4
# classic BPF opcodes
_LD_W_ABS = 0x20   # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15      # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35      # BPF_JMP | BPF_JGE | BPF_K
_RET_K = 0x06      # BPF_RET | BPF_K
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
RET_KILL_PROCESS = 0x80000000
X32_SYSCALL_BIT = 0x40000000
NO_SYSCALL = 0xFFFFFFFF  # syscall(-1): some programs probe with it

#: AUDIT_ARCH_* of each known machine, its denied system calls, whether x32 must be rejected
ARCHES = {
    "x86_64": (0xC000003E, {"ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
                            "pidfd_getfd": 438, "shmget": 29, "memfd_secret": 447,
                            "add_key": 248, "request_key": 249, "keyctl": 250,
                            "io_uring_setup": 425, "io_uring_enter": 426,
                            "io_uring_register": 427, "bpf": 321, "perf_event_open": 298,
                            "userfaultfd": 323}, True),
    "aarch64": (0xC00000B7, {"ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271,
                             "pidfd_getfd": 438, "shmget": 194, "memfd_secret": 447,
                             "add_key": 217, "request_key": 218, "keyctl": 219,
                             "io_uring_setup": 425, "io_uring_enter": 426,
                             "io_uring_register": 427, "bpf": 280, "perf_event_open": 241,
                             "userfaultfd": 282}, False),
}
DENIED = ("ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "shmget",
          "memfd_secret", "add_key", "request_key", "keyctl", "io_uring_setup",
          "io_uring_enter", "io_uring_register", "bpf", "perf_event_open", "userfaultfd")


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> tuple[int, int, int, int]:
    return code, jt, jf, k


def _arch_block(denied: dict[str, int], x32: bool) -> list[tuple[int, int, int, int]]:
    """For one ABI: load the number, reject x32, deny the listed calls, allow the rest.
    Its last three instructions are: allow, deny (EPERM), kill."""
    numbers = [denied[name] for name in DENIED]
    checks = 2 + len(numbers) if x32 else len(numbers)
    allow = 1 + checks          # index of "allow" in the block
    deny, kill = allow + 1, allow + 2
    block = [_ins(_LD_W_ABS, _NR)]
    if x32:
        # syscall(-1) is no x32 call: the kernel answers ENOSYS (as libseccomp lets it through)
        block.append(_ins(_JEQ_K, NO_SYSCALL, jt=allow - 2, jf=0))
        block.append(_ins(_JGE_K, X32_SYSCALL_BIT, jt=kill - 3, jf=0))
    for nr in numbers:
        i = len(block)
        block.append(_ins(_JEQ_K, nr, jt=deny - (i + 1), jf=0))
    block += [_ins(_RET_K, RET_ALLOW), _ins(_RET_K, RET_ERRNO | errno.EPERM),
              _ins(_RET_K, RET_KILL_PROCESS)]
    return block


def instructions() -> list[tuple[int, int, int, int]]:
    """The whole filter, for both known ABIs, as (code, jt, jf, k) tuples."""
    prog = [_ins(_LD_W_ABS, _ARCH)]
    for audit_arch, denied, x32 in ARCHES.values():
        block = _arch_block(denied, x32)
        prog.append(_ins(_JEQ_K, audit_arch, jt=0, jf=len(block)))
        prog += block
    prog.append(_ins(_RET_K, RET_KILL_PROCESS))  # any other ABI
    return prog


def program(machine: str | None = None) -> bytes | None:
    """The filter as bubblewrap reads it (struct sock_filter, native byte order), or None on a
    machine whose system call numbers are not known here."""
    if (machine or os.uname().machine) not in ARCHES:
        return None
    return b"".join(struct.pack("=HBBI", *ins) for ins in instructions())


def filter_fd(data: bytes) -> int:
    """A new descriptor to read `data` from, from its start (bubblewrap reads `--seccomp FD` to
    its end and closes it: one per bubblewrap)."""
    fd = os.memfd_create("multiplt-seccomp", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


_PROGRAM = program()
_warned = False


def sandbox_fd() -> int | None:
    """A descriptor holding the filter for one bubblewrap (`--seccomp FD`), or None on a machine
    whose system call numbers are not known here (warned once: programs then run without it)."""
    global _warned
    if _PROGRAM is None:
        if not _warned:
            _warned = True
            LOG.warning("no system call filter for %s: sandboxed programs may trace their "
                        "namespace's init (only x86_64 and aarch64 are known)", os.uname().machine)
        return None
    return filter_fd(_PROGRAM)
