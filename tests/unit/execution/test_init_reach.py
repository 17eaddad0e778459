"""The namespace's init (pid 1) decides a program's verdict: out of the program's reach.

A program runs as the same uid (65534) as its PID namespace's init. In a warm sandbox that init
(init.c) reports the program's wait status on a pipe, and in shared-init mode runs on the
pre-loaded runtime's own memory; in a bubblewrap per program, bubblewrap's own init carries the
exit code out on an eventfd. A program that could trace that init, read or write its memory or
take its descriptors could fake its verdict, leave something in the runtime for the next
program, or make the sandbox look broken and stop the batch. So pid 1 is not dumpable (init.c,
zygote.py), a system call filter denies ptrace, process_vm_* and pidfd_getfd (seccomp.py),
/proc/1 is covered in a bubblewrap per program (bwrap.py), and whatever reaches the status pipe
after the program started is the program's fault, never the sandbox's (zygote._report).
"""

from __future__ import annotations

import os
import re
import shutil
import struct

import pytest

from multiplt import languages
from multiplt.errors import PlatformError
from multiplt.execution import seccomp, zygote
from multiplt.execution.retry import run_with_retries
from multiplt.execution.sandbox import Sandbox
from multiplt.languages import registry
from multiplt.languages.base import OK, Language
from tests.unit.execution.helpers import installed, language_params
from tests.unit.execution.hostile_programs import (FIND_CANARY, FOREIGN_ABI, FORGE_STATUS,
                                                   INJECT_ERROR, PTRACE_FORGE, REACH_INIT,
                                                   READ_OWN_PROC, WRITE_CANARY, through_shell)

MODES = {
    "warm-native": dict(warm=True, native_init=True),
    "warm-python": dict(warm=True, native_init=False),
    "per-program": dict(warm=False),
}
FORKING = [code for code in registry.names()
           if type(registry.get(code)).fork_server is not Language.fork_server]
PY = languages.get("py")
REACH_LINES = ["mem refused", "fd refused", "ptrace refused", "process_vm_readv refused",
               "pidfd_getfd refused"]


def _sandbox(mode: str) -> Sandbox:
    if mode == "warm-native" and not shutil.which("gcc"):
        pytest.skip("no C compiler: the compiled init cannot be built (setup.sh installs gcc)")
    sandbox = Sandbox(**MODES[mode])
    sandbox.check()
    return sandbox


@pytest.fixture(scope="module")
def forking():
    """One warm sandbox whose programs fork from the pre-loaded runtimes."""
    with Sandbox(warm=True) as sb:
        for code in FORKING:
            if installed(code):
                sb.prepare(languages.get(code))
        yield sb


def _forked(sandbox, code, program):
    lang = languages.get(code)
    finished = run_with_retries(sandbox, lang, program, lang.timeout * 2)
    assert finished.sandbox_info.get("forked"), f"{code}: not forked from the pre-loaded runtime"
    return lang, finished


# ---- no way in --------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", list(MODES))
def test_the_init_is_out_of_reach_every_way(mode):
    """Its memory, its descriptors, tracing it: refused, whichever way the program started."""
    with _sandbox(mode) as sandbox:
        finished = sandbox.run(PY, REACH_INIT, 20)
    assert finished.exit_code == 0, finished.stderr
    assert finished.stdout.splitlines() == REACH_LINES


@pytest.mark.parametrize("code", language_params(FORKING))
def test_a_forked_programs_init_is_out_of_reach(forking, code):
    """In shared-init mode pid 1 runs on the pre-loaded runtime's memory: a child of the
    program can neither trace it nor open its memory or its status pipe."""
    _, finished = _forked(forking, code, through_shell(code, REACH_INIT, 0))
    assert finished.exit_code == 0, finished.stderr
    assert finished.stdout.splitlines() == REACH_LINES


@pytest.mark.parametrize("code", language_params(FORKING))
def test_a_program_leaves_nothing_in_the_runtime_through_its_init(forking, code):
    """Writing into pid 1's heap was writing into the pre-loaded runtime (shared-init mode):
    the next program, a fork of that runtime in the same warm sandbox, found the canary."""
    _, first = _forked(forking, code, through_shell(code, WRITE_CANARY, 0))
    assert "canary written" not in first.stdout
    assert "PermissionError" in first.stderr, first.stderr
    _, second = _forked(forking, code, through_shell(code, FIND_CANARY, 0))
    assert second.stdout.splitlines() == ["canary absent"], second.stderr
    assert first.sandbox_info["sandbox-pid-namespace"] == \
        second.sandbox_info["sandbox-pid-namespace"]  # the same warm sandbox


@pytest.mark.parametrize("code", language_params(FORKING))
def test_a_forked_program_reads_its_own_proc_files(forking, code):
    """pid 1 is not dumpable and its fork would not be either (root-owned /proc/self files it
    could not read): the program is dumpable again, as a fresh interpreter is."""
    lang, finished = _forked(forking, code, READ_OWN_PROC[code])
    assert finished.exit_code == 0, finished.stderr
    assert finished.stdout.split() in (["true", "true"], ["TRUE", "TRUE"], ["#t", "#t"],
                                       ["(#t", "#t)"]), finished.stdout


@pytest.mark.parametrize("mode", list(MODES))
def test_foreign_system_call_abis_kill_the_program(mode):
    """x32 and i386 system calls (other numbers, which the filter does not list) are refused
    outright: the program is killed (SIGSYS)."""
    if os.uname().machine != "x86_64":
        pytest.skip("x86_64 machine code")
    with _sandbox(mode) as sandbox:
        for abi, program in FOREIGN_ABI.items():
            finished = sandbox.run(PY, program, 20)
            assert (finished.exit_code, finished.stdout) == (128 + 31, ""), (abi, finished)


# ---- no verdict faked, no sandbox error caused -------------------------------------------------

@pytest.mark.parametrize("code", ["py", *FORKING])
@pytest.mark.parametrize("mode", ["warm-native", "warm-python"])
def test_a_forged_status_does_not_pass(mode, code):
    """"S 0" and a stray byte written to pid 1's status pipe once made a failing program OK (its
    init's own "S" line glued to the stray byte, the forged one kept)."""
    if not installed(code):
        pytest.skip(f"{code} runtime not installed")
    if mode == "warm-python" and code != "py":
        pytest.skip("forked programs start from the compiled library, not the Python init")
    lang = languages.get(code)
    with _sandbox(mode) as sandbox:
        sandbox.prepare(lang)
        finished = run_with_retries(sandbox, lang, through_shell(code, FORGE_STATUS, 1),
                                    lang.timeout * 2)
    assert finished.exit_code != 0
    assert lang.classify(finished.exit_code, finished.stdout, finished.stderr) != OK


@pytest.mark.parametrize("code", ["py", *FORKING])
@pytest.mark.parametrize("mode", ["warm-native", "warm-python"])
def test_an_injected_error_line_does_not_stop_the_batch(mode, code):
    """An "E" line on the status pipe was a failure of the sandbox: retried three times, then a
    PlatformError that stops the whole shard. Now the program simply runs (and passes here)."""
    if not installed(code):
        pytest.skip(f"{code} runtime not installed")
    if mode == "warm-python" and code != "py":
        pytest.skip("forked programs start from the compiled library, not the Python init")
    lang = languages.get(code)
    with _sandbox(mode) as sandbox:
        sandbox.prepare(lang)
        try:
            finished = run_with_retries(sandbox, lang, through_shell(code, INJECT_ERROR, 0),
                                        lang.timeout * 2)
        except PlatformError as exc:
            pytest.fail(f"the program stopped the batch: {exc}")
    assert finished.exit_code == 0, finished.stderr


def test_bubblewraps_init_cannot_be_made_to_report_success():
    """One bubblewrap per program: tracing bubblewrap's init and making it write "exit code 0"
    to its eventfd once made a failing program OK."""
    if os.uname().machine != "x86_64":
        pytest.skip("x86_64 registers")
    program = PTRACE_FORGE + "\nassert 1 + 1 == 3\n"
    with _sandbox("per-program") as sandbox:
        finished = sandbox.run(PY, program, 20)
    assert "still here" in finished.stdout, finished.stderr
    assert finished.exit_code == 1 and "AssertionError" in finished.stderr, finished


# ---- the status protocol itself (zygote._report) ----------------------------------------------

@pytest.mark.parametrize("status,outcome", [
    (b"P 5\nN 4026532000\nS 0\n", {"wait": 0, "pid_namespace": 4026532000}),
    (b"N 9\nP 5\nS 256\n", {"wait": 256, "pid_namespace": 9}),  # "P" races pid 1
    (b"N 9\nS 256\nP 5\n", {"wait": 256, "pid_namespace": 9}),
    (b"P 5\nE mount /tmp: Cannot allocate memory\n", "error"),  # before the program existed
    (b"", "error"),
    (b"P 5\nN 9\n", "error"),  # pid 1 gone without a word: killed from outside
    (b"P 5\nN 9\nS -11\n", "error"),  # pid 1's own failure after "N": no fork
    # after "N" anything but one "S" line is the program's doing
    (b"P 5\nN 9\nS 0\nX", "tampered"),
    (b"P 5\nN 9\nS 0\nXS 256\n", "tampered"),
    (b"P 5\nN 9\nE injected by the program\nS 0\n", "tampered"),
    (b"P 5\nN 9\nE injectedS 256\n", "tampered"),  # a line left open, glued to pid 1's own
    (b"P 5\nN 9\nS 0\nS 256\n", "tampered"),
    (b"P 5\nN 9\nP 6\nS 256\n", "tampered"),
    (b"P 5\nN 9\nS 00\n", "tampered"),
    (b"P 5\nN 9\nS 99999999999\n", "tampered"),
    (b"P 5\nN 9\nN 9\nS 0\n", "tampered"),
])
def test_only_one_status_line_after_the_program_started_is_believed(status, outcome):
    report = zygote._report(status, timed_out=False)
    if outcome in ("error", "tampered"):
        assert outcome in report, report
        assert "wait" not in report
    else:
        assert report == outcome


def test_a_timed_out_program_is_a_timeout_whatever_its_pipe_holds():
    for status in (b"P 5\nN 9\n", b"P 5\nN 9\nE injected\n", b"P 5\nN 9\nS 0\nX"):
        assert zygote._report(status, timed_out=True) == {"wait": None, "pid_namespace": 9}


def test_a_forged_pid_is_never_killed(monkeypatch):
    """At the deadline pid 1 is killed by the pid its "P" line names: only a process whose
    parent is pid 1's known parent (the helper or the server), so no line makes the supervisor
    kill another process of the sandbox (itself, a server)."""
    init = zygote._Init(None, parent=os.getpid())
    killed = []
    monkeypatch.setattr(zygote.signal, "pidfd_send_signal", lambda *args: killed.append(args))
    init.kill(f"N 9\nP {os.getppid()}\nP 1\n".encode())  # neither is a child of ours
    assert killed == []
    assert not init.kill(b"N 9\n")  # no "P" line: nothing to kill it by (the sandbox is killed)


# ---- the filter itself ------------------------------------------------------------------------

def _evaluate(filter_bytes: bytes, arch: int, nr: int) -> int:
    """Classic BPF, the four instructions the filter uses, on one seccomp_data."""
    data = struct.pack("=iI", nr, arch) + bytes(56)
    prog = [struct.unpack("=HBBI", filter_bytes[i:i + 8]) for i in range(0, len(filter_bytes), 8)]
    pc, acc = 0, 0
    while True:
        code, jt, jf, k = prog[pc]
        if code == 0x20:
            acc = struct.unpack_from("=I", data, k)[0]
            pc += 1
        elif code in (0x15, 0x35):
            pc += 1 + (jt if (acc == k if code == 0x15 else acc >= k) else jf)
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected instruction {code:#x}")


@pytest.mark.parametrize("machine", list(seccomp.ARCHES))
def test_the_filter_denies_exactly_the_listed_calls(machine):
    program = seccomp.program(machine)
    audit, numbers, x32 = seccomp.ARCHES[machine]
    deny, allow = seccomp.RET_ERRNO | 1, seccomp.RET_ALLOW  # EPERM
    for name in seccomp.DENIED:
        assert _evaluate(program, audit, numbers[name]) == deny, name
    for nr in range(0, 460):
        if nr not in numbers.values():
            assert _evaluate(program, audit, nr) == allow, nr
    killed = seccomp.RET_KILL_PROCESS
    assert _evaluate(program, 0x40000003, 26) == killed  # i386 ptrace
    assert _evaluate(program, 0x40000028, 26) == killed  # 32-bit ARM ptrace
    assert (_evaluate(program, audit, seccomp.X32_SYSCALL_BIT + 39) == killed) == x32
    assert _evaluate(program, audit, -1) == allow  # syscall(-1): ENOSYS from the kernel, no kill


#: where the C library's kernel headers list each known machine's system call numbers
HEADERS = {"x86_64": "/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
           "aarch64": "/usr/include/asm-generic/unistd.h"}


@pytest.mark.parametrize("machine", list(seccomp.ARCHES))
def test_the_denied_numbers_are_the_kernels(machine):
    """Each denied call's number as the kernel headers have it (linux-libc-dev), so a wrong
    number cannot leave a call open on the other architecture than the tests run on."""
    if not os.path.exists(HEADERS[machine]):
        pytest.skip(f"no kernel headers at {HEADERS[machine]} (Debian package linux-libc-dev)")
    with open(HEADERS[machine]) as f:
        text = f.read()
    numbers = seccomp.ARCHES[machine][1]
    for name in seccomp.DENIED:
        assert re.search(rf"^#define __NR_{name}\s+{numbers[name]}\s*$", text, re.M), name


def test_no_filter_for_an_unknown_machine():
    assert seccomp.program("riscv64") is None
