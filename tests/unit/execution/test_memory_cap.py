"""The memory cap (`Limits.memory`): the sum of the resident memory of all of one program's
processes, enforced in every way a program runs.

Per-process limits alone (2 GiB of address space, 64 processes) let one program hold 64 x 2 GiB.
Here a program forks three children that each write 300 MiB (each one alone below a 512 MiB
cap, together over it): it is killed, with a line on stderr saying why; the same program under a
cap above its use passes, and so does a normal program, forked from a pre-loaded runtime or not.
Memory that is in no process's RSS: a memory file (memfd) filled with write() counts too, and
is killed the same way; System V shared memory and secret memory are refused in the sandbox.
Looking for memory files reads every descriptor: a program gets at most `Limits.open_files` per
process, and a sum reads only a time-budgeted slice of them, so many descriptors neither delay
the next sum nor hide an allocation over the cap.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys

import pytest

from multiplt import languages
from multiplt.execution import executor, preflight, zygote
from multiplt.execution.sandbox import Limits, Sandbox
from multiplt.languages import registry
from multiplt.languages.base import EXCEPTION, OK, Language
from tests.unit.execution.helpers import installed, language_params
from tests.unit.execution.hostile_programs import INSPECT, through_shell

MODES = {
    "warm-native": dict(warm=True, native_init=True),
    "warm-python": dict(warm=True, native_init=False),
    "per-program": dict(warm=False),
    "unsandboxed": dict(unsafe_no_sandbox=True),
}
FORKING = [code for code in registry.names()
           if type(registry.get(code)).fork_server is not Language.fork_server]
PY = languages.get("py")
CAP = 512 << 20

#: three children that each write @MIB@ MiB and keep it for @HOLD@ seconds
HOG = r"""
import os, time
pids = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        block = b"x" * (@MIB@ << 20)  # every page written, so resident
        time.sleep(@HOLD@)
        os._exit(0)
    pids.append(pid)
for pid in pids:
    os.waitpid(pid, 0)
print("all children done")
"""
#: 900 MiB held until the program is killed (at its deadline, without a cap)
OVER = HOG.replace("@MIB@", "300").replace("@HOLD@", "10**6")
#: the same 900 MiB, given back after a second
BRIEF = HOG.replace("@MIB@", "300").replace("@HOLD@", "1")
#: 900 MiB written into a memory file (memfd_create) and held, never mapped: in no RSS
MEMFD = r"""
import os, time
fd = os.memfd_create("hog")
block = b"x" * (1 << 20)
for _ in range(900):
    os.write(fd, block)
print("all written", flush=True)
time.sleep(10**6)
"""
#: 900 MiB of System V shared memory, each segment detached once written: it stays, unmapped
SYSV_SHM = r"""
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
held = 0
for _ in range(9):
    segment = libc.shmget(0, 100 << 20, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600
    if segment < 0:
        print("shmget", errno.errorcode[ctypes.get_errno()])
        break
    address = libc.shmat(segment, None, 0)
    ctypes.memset(address, 1, 100 << 20)
    libc.shmdt(ctypes.c_void_p(address))
    held += 100
print("held", held)
"""
#: secret memory: once unmapped, its pages are in no RSS, and fstat reports none
SECRET = r"""
import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.syscall(447, 0)  # memfd_secret, the same number on x86_64 and aarch64
print("memfd_secret", errno.errorcode[ctypes.get_errno()] if fd < 0 else "created")
"""
#: as many descriptors as it may open (up to 5000), then how many it got and why it stopped
OPEN_MANY = r"""
import errno, os, resource
print("limit", *resource.getrlimit(resource.RLIMIT_NOFILE))
fds, why = [], "none"
while len(fds) < 5000:
    try:
        fds.append(os.open("/dev/null", os.O_RDONLY))
    except OSError as e:
        why = errno.errorcode[e.errno]
        break
print("opened", len(fds), why)
"""
#: @N@ descriptors held, then (once a sum has read them) 900 MiB held for 0.3 s and given
#: back: a sum every 25 ms kills it; one every few seconds does not
MANY_FDS_THEN_HOG = r"""
import os, time
fds = [os.open("/dev/null", os.O_RDONLY) for _ in range(@N@)]
print("descriptors", len(fds), flush=True)
time.sleep(0.2)
block = b"x" * (900 << 20)
time.sleep(0.3)
del block
print("survived")
"""
KILLED = re.compile(r"\nsandbox: killed for exceeding the memory cap: the program's processes "
                    r"held (\d+) MiB resident together, the cap is 512 MiB\n\Z")


def _sandbox(mode: str, limits: Limits) -> Sandbox:
    if mode == "warm-native" and not shutil.which("gcc"):
        pytest.skip("no C compiler: the compiled init cannot be built (setup.sh installs gcc)")
    sandbox = Sandbox(limits, **MODES[mode])
    sandbox.check()
    assert sandbox.mode == {"per-program": "bubblewrap per program",
                            "unsandboxed": "unsandboxed"}.get(mode, "warm")
    return sandbox


def _assert_killed_for_memory(finished) -> None:
    assert finished.memory_exceeded and not finished.timed_out, finished
    assert finished.exit_code == 128 + 9, finished
    held = KILLED.search(finished.stderr)
    assert held, finished.stderr[-500:]
    assert int(held.group(1)) > 512


@pytest.mark.parametrize("mode", list(MODES))
def test_a_program_over_the_cap_is_killed_and_told_why(mode):
    """Killed (without the cap it would run to its deadline: a Timeout), exit code 137, the
    reason at the end of stderr; the next program in the same sandbox runs normally."""
    with _sandbox(mode, Limits(memory=CAP)) as sandbox:
        finished = sandbox.run(PY, OVER, 30)
        _assert_killed_for_memory(finished)
        assert finished.stdout == ""
        normal = sandbox.run(PY, "print(sum(range(10)))", 30)
    assert (normal.exit_code, normal.stdout, normal.memory_exceeded) == (0, "45\n", False), normal


@pytest.mark.parametrize("mode", list(MODES))
def test_a_memory_file_over_the_cap_is_killed(mode):
    """A memfd filled with write() is in no process's RSS: its pages count (once per file,
    whoever holds it) while any of the program's processes holds it open."""
    with _sandbox(mode, Limits(memory=CAP)) as sandbox:
        finished = sandbox.run(PY, MEMFD, 30)
        normal = sandbox.run(PY, "print(sum(range(10)))", 30)
    _assert_killed_for_memory(finished)
    assert finished.stdout == ""  # killed while writing
    assert (normal.exit_code, normal.stdout, normal.memory_exceeded) == (0, "45\n", False), normal


@pytest.mark.parametrize("program, refused", [(SYSV_SHM, "shmget EPERM\nheld 0\n"),
                                              (SECRET, "memfd_secret EPERM\n")],
                         ids=["sysv-shm", "memfd-secret"])
@pytest.mark.parametrize("mode", [mode for mode in MODES if mode != "unsandboxed"])
def test_memory_the_cap_cannot_see_is_refused(mode, program, refused):
    """System V shared memory (a detached segment stays, unmapped) and secret memory (unmapped
    pages stay in the file, which fstat shows empty) are refused by the system call filter in
    every sandboxed mode (unsandboxed there is no filter: trusted code only)."""
    with _sandbox(mode, Limits(memory=CAP)) as sandbox:
        finished = sandbox.run(PY, program, 30)
    assert (finished.exit_code, finished.stdout) == (0, refused), finished
    assert not finished.memory_exceeded


@pytest.mark.parametrize("mode", list(MODES))
def test_under_a_cap_above_its_use_the_same_program_passes(mode):
    with _sandbox(mode, Limits(memory=2 << 30)) as sandbox:
        finished = sandbox.run(PY, BRIEF, 30)
    assert finished.exit_code == 0, finished.stderr[-500:]
    assert finished.stdout == "all children done\n"
    assert not finished.memory_exceeded


@pytest.mark.parametrize("hog", [OVER, MEMFD], ids=["resident", "memory-file"])
@pytest.mark.parametrize("code", language_params(FORKING))
def test_a_forked_program_over_the_cap_is_killed(code, hog):
    """A program forked from its language's pre-loaded runtime (pid 1 is the runtime's clone or
    runs on its memory): what runs below pid 1 counts, pid 1 and the runtime do not; a normal
    program of the language (its own copy of the runtime's pages included) stays under 512 MiB."""
    lang = languages.get(code)
    with Sandbox(Limits(memory=CAP), warm=True) as sandbox:
        sandbox.prepare(lang)
        normal = sandbox.run(lang, preflight.known_program(lang, good=True), lang.timeout * 2)
        finished = sandbox.run(lang, through_shell(code, hog, 0), 30)
    assert normal.sandbox_info.get("forked") and finished.sandbox_info.get("forked")
    assert normal.exit_code == 0 and not normal.memory_exceeded, normal.stderr[-500:]
    _assert_killed_for_memory(finished)


def test_execute_scores_it_as_an_exception(tmp_path):
    """In the results file: status Exception (as a MemoryError past the address-space limit),
    exit code 137, stderr saying why; the next completion passes."""
    doc = {"name": "hog", "language": "py", "prompt": "", "tests": "",
           "completions": [OVER, "print('fine')"], "stop_tokens": [], "temperature": 0.0,
           "top_p": 1.0, "max_tokens": 0}
    with gzip.open(tmp_path / "hog.json.gz", "wt") as f:
        json.dump(doc, f)
    summary = executor.execute(str(tmp_path), workers=1, timeout=30, limits=Limits(memory=CAP))
    assert summary["statuses"] == {EXCEPTION: 1, OK: 1}
    with gzip.open(tmp_path / "hog.results.json.gz", "rt") as f:
        hog, fine = json.load(f)["results"]
    assert (hog["status"], hog["exit_code"]) == (EXCEPTION, 137)
    assert KILLED.search(hog["stderr"]), hog["stderr"][-500:]
    assert (fine["status"], fine["exit_code"]) == (OK, 0)


def capped_sum(root: int, include_root: bool = False) -> int:
    """What the memory cap (MemoryWatch.over) sums for the tree of `root`: a watch of cap 0 (every
    sum is over, `used` holds it), summed until its look through the descriptors is done (a
    sum reads them for at most FILE_SCAN_BUDGET_S, then goes on at the next)."""
    watch = zygote.MemoryWatch(0)
    assert watch.over(root, include_root)
    while watch.files._look is not None:
        assert watch.over(root, include_root)
    return watch.used


@pytest.mark.parametrize("way", ["children files", "parent fields"])
def test_the_cap_sums_every_descendant(way, monkeypatch):
    """A grandchild holding 64 MiB counts below this process, and below its parent; each way
    the tree is found (the kernel's children files where it has them, else every process's
    parent field)."""
    has_files = os.path.exists(f"/proc/self/task/{os.getpid()}/children")
    if way == "children files" and not has_files:
        pytest.skip("this kernel has no /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN)")
    monkeypatch.setattr(zygote, "_CHILDREN_FILES", [way == "children files"])
    grandchild = ("import time; block = b'x' * (64 << 20); print('holding', flush=True); "
                  "time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", "import subprocess, sys; subprocess.run("
                              f"[sys.executable, '-c', {grandchild!r}])"], stdout=subprocess.PIPE,
                             start_new_session=True)
    try:
        assert child.stdout.readline() == b"holding\n"
        below_us = capped_sum(os.getpid())
        below_child = capped_sum(child.pid)
        with_child = capped_sum(child.pid, include_root=True)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert below_child >= 64 << 20  # the grandchild
    assert with_child > below_child  # and the child itself
    assert below_us >= with_child - (1 << 20)  # the whole tree, give or take pages meanwhile


def test_the_cap_counts_a_memory_file_once():
    """A memfd of 64 MiB, written and never mapped, held open by a child and by its grandchild
    (inherited): counted once, by its allocated size, beside the two processes' RSS."""
    holder = ("import os, time\n"
              "fd = os.memfd_create('held')\n"
              "for _ in range(64):\n"
              "    os.write(fd, b'x' * (1 << 20))\n"
              "grandchild = os.fork()\n"
              "if grandchild == 0:\n"
              "    time.sleep(60)\n"
              "print(grandchild, flush=True)\n"
              "time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", holder], stdout=subprocess.PIPE,
                             start_new_session=True)
    try:
        grandchild = int(child.stdout.readline())

        def rss() -> int:
            return sum(int(zygote._stat(pid)[21]) * zygote._PAGE for pid in (child.pid, grandchild))

        # the two processes' RSS may still grow while the cap reads them (a CI run on a loaded
        # machine saw 1.5 MiB more after): `held` counts theirs at some moment in between
        before = rss()
        held = capped_sum(child.pid, include_root=True)
        after = rss()
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()
    assert held - after - (1 << 20) <= 64 << 20 <= held - before + (1 << 20), (held, before, after)
    assert held - after < (64 << 20) + (8 << 20), (held, before, after)


@pytest.mark.parametrize("mode", list(MODES))
def test_a_program_is_refused_descriptors_past_the_limit(mode):
    """RLIMIT_NOFILE is `Limits.open_files` (soft and hard) in every mode, whatever the
    executor's own limit is (20000 here, often 1M in Docker): the descriptors the memory cap
    reads stay bounded."""
    with _sandbox(mode, Limits(memory=CAP)) as sandbox:
        finished = sandbox.run(PY, OPEN_MANY, 30)
    assert finished.exit_code == 0, finished.stderr[-500:]
    limit, opened = finished.stdout.splitlines()
    assert limit == f"limit {Limits().open_files} {Limits().open_files}"
    count, why = opened.split()[1:]
    assert (why, int(count) < Limits().open_files) == ("EMFILE", True), opened


@pytest.mark.parametrize("code", language_params(list(INSPECT)))
def test_every_runtime_runs_under_the_open_files_limit(code):
    """Each language's own runtime (forked from its pre-loaded one where it has one) starts and
    runs under the limit, and sees it."""
    lang = languages.get(code)
    with Sandbox(Limits(memory=CAP)) as sandbox:
        sandbox.prepare(lang)
        finished = sandbox.run(lang, INSPECT[code], lang.timeout * 2)
        normal = sandbox.run(lang, preflight.known_program(lang, good=True), lang.timeout * 2)
    assert finished.exit_code == 0, finished.stderr[-500:]
    limits = {line[:26].strip(): line[26:].split() for line in finished.stdout.splitlines()
              if line.startswith("Max ")}
    assert limits["Max open files"][:2] == [str(Limits().open_files)] * 2
    assert (normal.exit_code, normal.memory_exceeded) == (0, False), normal.stderr[-500:]


@pytest.mark.parametrize("code", language_params(FORKING))
def test_a_forked_program_is_refused_descriptors_past_the_limit(code):
    """Forked from a pre-loaded runtime, the program (and what it starts) has the limit too."""
    lang = languages.get(code)
    if not installed("py"):
        pytest.skip("python3 not installed")
    with Sandbox(Limits(memory=CAP), warm=True) as sandbox:
        sandbox.prepare(lang)
        finished = sandbox.run(lang, through_shell(code, OPEN_MANY, 0), 30)
    assert finished.sandbox_info.get("forked"), finished.sandbox_info
    limit, opened = finished.stdout.splitlines()
    assert limit == f"limit {Limits().open_files} {Limits().open_files}"
    assert opened.split()[-1] == "EMFILE", opened


@pytest.mark.parametrize("mode", list(MODES))
def test_many_descriptors_do_not_slow_the_cap(mode):
    """15,000 descriptors (a limit raised for the test) and then 900 MiB held for 0.3 s: still
    killed, in every mode. A sum that read every descriptor took 70-260 ms here and spaced the
    next one out to 20 times that (1.4-5 s), past the whole allocation."""
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < 16384:
        pytest.skip("the executor's own hard limit on open files is below 16384")
    program = MANY_FDS_THEN_HOG.replace("@N@", "15000")
    with _sandbox(mode, Limits(memory=CAP, open_files=16384)) as sandbox:
        finished = sandbox.run(PY, program, 30)
    assert finished.stdout == "descriptors 15000\n", finished
    _assert_killed_for_memory(finished)


def test_a_sum_reads_a_slice_of_many_descriptors(monkeypatch):
    """A sum over a process of 15,000 descriptors reads a time-budgeted slice of them, not all;
    the memory file behind the last one is found within one look spread over later sums, and
    once found its growth counts at the very next sum, before the look comes back to it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 15100:
        pytest.skip("the hard limit on open files is below 15,100")
    holder = ("import os, resource, sys, time\n"
              f"resource.setrlimit(resource.RLIMIT_NOFILE, ({hard}, {hard}))\n"
              "nulls = [os.open('/dev/null', os.O_RDONLY) for _ in range(15000)]\n"
              "fd = os.memfd_create('held')\n"
              "def grow():\n"
              "    for _ in range(64):\n"
              "        os.write(fd, b'x' * (1 << 20))\n"
              "    print(os.fstat(fd).st_size, flush=True)\n"
              "grow()\n"
              "sys.stdin.readline()\n"
              "grow()\n"
              "time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", holder], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, start_new_session=True)
    reads = []
    readlink = os.readlink
    monkeypatch.setattr(os, "readlink", lambda path: reads.append(path) or readlink(path))
    try:
        assert child.stdout.readline() == b"67108864\n"
        watch = zygote.MemoryWatch(0)  # every sum is "over", so `used` holds each one

        def held() -> int:  # the sum less the process's own RSS
            watch.over(child.pid, include_root=True)
            return watch.used - int(zygote._stat(child.pid)[21]) * zygote._PAGE

        first = held()
        assert 0 < len(reads) < 15000, len(reads)  # one sum, a slice (old: all 15,003)
        assert first < 64 << 20  # the memory file is behind the last /dev/null
        sums = 1
        while held() < 64 << 20 and sums < 15000:
            sums += 1
        assert 64 << 20 <= held() < 72 << 20, sums
        child.stdin.write(b"grow\n")
        child.stdin.flush()
        assert child.stdout.readline() == b"134217728\n"
        reads.clear()
        assert 128 << 20 <= held() < 136 << 20
        assert len(reads) < 15000
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        child.stdin.close()
        child.stdout.close()
