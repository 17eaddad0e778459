"""Warm sandboxes (one bubblewrap per worker, fresh namespaces per program; zygote.py, init.c).

Every way of starting a program (compiled init, Python init, one bubblewrap per program) must
give the same isolation and the same outcomes; programs run one after another in one warm
sandbox must not see each other; a supervisor that dies is replaced and never scores a program.
"""

from __future__ import annotations

import os
import shutil
import threading

import pytest

from multiplt import languages
from multiplt.errors import PlatformError
from multiplt.execution import native
from multiplt.execution.retry import run_with_retries
from multiplt.execution.sandbox import NOBODY, Limits, Sandbox
from tests.unit.execution.helpers import processes_left_in

MODES = {
    "warm-native": dict(warm=True, native_init=True),
    "warm-python": dict(warm=True, native_init=False),
    "per-program": dict(warm=False),
}
SH = languages.get("py")  # python3 is on every machine that runs these tests


def _sandbox(mode: str, limits: Limits | None = None) -> Sandbox:
    if mode == "warm-native" and not shutil.which("gcc"):
        pytest.skip("no C compiler: the compiled init cannot be built (setup.sh installs gcc)")
    sandbox = Sandbox(limits, **MODES[mode])
    sandbox.check()
    assert sandbox.mode == ("bubblewrap per program" if mode == "per-program" else "warm")
    assert (getattr(sandbox.runner, "init", None) is not None) == (mode == "warm-native")
    return sandbox


@pytest.fixture(params=list(MODES))
def sandbox(request):
    with _sandbox(request.param) as s:
        yield s


INSPECT = r"""
import os, resource, sys
status = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
print("uid", status["Uid"].split())
print("caps", [status[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")])
print("pid", os.getpid(), "ppid", os.getppid())
print("nproc", resource.getrlimit(resource.RLIMIT_NPROC))
print("as", resource.getrlimit(resource.RLIMIT_AS))
print("nofile", resource.getrlimit(resource.RLIMIT_NOFILE))
print("cwd", os.getcwd(), sorted(os.listdir("/tmp")))
print("procs", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
print("stdin", repr(sys.stdin.read()))
for path in ("/etc/x", "/tmp/.multiplt-lib/x"):
    try:
        open(path, "w")
        print("wrote", path)
    except OSError as e:
        print("refused", path)
sys.stdout.flush()
os.kill(os.getpid(), 9)
"""


def test_same_isolation_every_way(sandbox):
    finished = sandbox.run(SH, INSPECT, 20)
    lines = dict(line.split(" ", 1) for line in finished.stdout.splitlines())
    assert finished.exit_code == 128 + 9, finished  # killed by a signal: 128 + its number
    assert lines["uid"] == str([str(NOBODY)] * 4)
    assert lines["caps"] == str(["0000000000000000"] * 5)
    assert lines["pid"].split()[0] in ("2", "3")  # the program, under its namespace's init
    assert lines["nproc"] == str((Limits().processes,) * 2)
    assert lines["as"] == str((Limits().address_space,) * 2)
    assert lines["nofile"] == str((Limits().open_files,) * 2)
    assert lines["cwd"] == "/tmp ['program.py']"
    assert lines["stdin"] == "''"
    assert "refused /etc/x" in finished.stdout
    assert "wrote" not in finished.stdout
    assert finished.sandbox_info.get("pid-namespace")


MULTIPROCESSING = r"""
import multiprocessing, os
print(multiprocessing.Pool(2).map(abs, [1, -2]))
queue = multiprocessing.Queue()
queue.put("queued")
print(queue.get())
shm = os.statvfs("/dev/shm")
print(shm.f_blocks * shm.f_frsize)
"""


def test_multiprocessing_works_every_way(sandbox):
    """Its semaphores live in /dev/shm: a private, size-capped tmpfs per program."""
    finished = sandbox.run(SH, MULTIPROCESSING, 30)
    assert finished.exit_code == 0, finished.stderr
    assert finished.stdout.splitlines() == ["[1, 2]", "queued", str(Limits().shm_size)]


FILL_SHM = r"""
import errno
written = 0
try:
    with open("/dev/shm/fill", "wb") as f:
        for _ in range(64):
            written += f.write(b"x" * 65536)
            f.flush()
except OSError as e:
    print(errno.errorcode[e.errno], written)
"""


@pytest.mark.parametrize("mode", list(MODES))
def test_a_write_to_dev_shm_stops_at_its_cap(mode):
    with _sandbox(mode, Limits(shm_size=1 << 20)) as sandbox:
        finished = sandbox.run(SH, FILL_SHM, 20)
    assert finished.exit_code == 0, finished.stderr
    assert finished.stdout.split() == ["ENOSPC", str(1 << 20)]


@pytest.mark.parametrize("mode", ["warm-native", "warm-python"])
def test_programs_in_one_warm_sandbox_do_not_see_each_other(mode):
    """One after another in the same sandbox: a file left in /tmp or /dev/shm, a SysV message
    queue and a background process of the first are all gone for the second. (SysV shared
    memory is refused in the sandbox: test_memory_cap.py.)"""
    with _sandbox(mode) as sandbox:
        first = sandbox.run(SH, (
            "import os, subprocess, ctypes\n"
            "open('/tmp/left-behind', 'w').write('x')\n"
            "open('/dev/shm/left-behind', 'w').write('x')\n"
            "libc = ctypes.CDLL(None)\n"
            "print('queue', libc.msgget(4242, 0o1666))\n"
            "subprocess.Popen(['sleep', '300'], start_new_session=True)\n"), 20)
        assert first.exit_code == 0, first.stderr
        assert int(first.stdout.split()[1]) >= 0  # the queue was created
        second = sandbox.run(SH, (
            "import os, ctypes\n"
            "libc = ctypes.CDLL(None)\n"
            "print(sorted(os.listdir('/tmp')), os.listdir('/dev/shm'), libc.msgget(4242, 0),\n"
            "      sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n"), 20)
        assert second.exit_code == 0, second.stderr
        # only its own file, no such queue, and only its init (1) and itself (2)
        assert second.stdout.strip() == "['program.py'] [] -1 [1, 2]"
        assert first.sandbox_info["pid-namespace"] != second.sandbox_info["pid-namespace"]
        assert first.sandbox_info["sandbox-pid-namespace"] == second.sandbox_info["sandbox-pid-namespace"]


@pytest.mark.parametrize("mode", ["warm-native", "warm-python"])
def test_a_dead_supervisor_is_replaced_not_scored(mode):
    """Kill the warm sandbox between programs and in the middle of one: the run in flight is a
    platform failure (retried, never scored), and the retry gets a fresh sandbox."""
    with _sandbox(mode) as sandbox:
        assert sandbox.run(SH, "print('a')", 20).stdout == "a\n"
        (warm,) = sandbox.runner.idle
        os.kill(warm.proc.pid, 9)
        warm.proc.wait()
        finished = run_with_retries(sandbox, SH, "print('b')", 20)
        assert finished.stdout == "b\n" and finished.exit_code == 0
        assert sandbox.runner.idle and sandbox.runner.idle[0] is not warm

        (warm,) = sandbox.runner.idle
        sandbox.runner.idle.remove(warm)
        threading.Timer(1.0, lambda: os.kill(warm.proc.pid, 9)).start()
        sandbox.runner.idle.append(warm)
        with pytest.raises(PlatformError, match="warm sandbox"):
            sandbox.run(SH, "import time; time.sleep(30)", 20)
        assert warm not in sandbox.runner.idle


def test_timeout_kills_everything_the_program_started():
    with _sandbox("warm-native" if shutil.which("gcc") else "warm-python") as sandbox:
        finished = sandbox.run(SH, (
            "import subprocess, time\n"
            "subprocess.Popen(['sh', '-c', 'sleep 300 & sleep 300'], start_new_session=True)\n"
            "time.sleep(300)\n"), 1.0)
        assert finished.timed_out and finished.exit_code == -1
        assert finished.duration < 3.0
        left = processes_left_in({finished.sandbox_info["pid-namespace"]})
        assert not left, f"processes left in the program's namespace: {left}"


def test_the_compiled_init_is_cached_by_source(tmp_path, monkeypatch):
    if not shutil.which("gcc"):
        pytest.skip("no C compiler")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = native.build(str(tmp_path))
    assert first and os.access(first, os.X_OK)
    cached = list((tmp_path / "cache" / "multiplt").iterdir())
    assert len(cached) == 1
    mtime = cached[0].stat().st_mtime_ns
    native.build(str(tmp_path))
    assert cached[0].stat().st_mtime_ns == mtime  # not compiled again


def test_no_compiler_means_the_python_init(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("CC", "no-such-compiler")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert native.build(str(tmp_path)) is None
