"""Asserts validated in the sandbox, one forked child each: verdicts, isolation, hostile asserts."""

from __future__ import annotations

import pytest

from multiplt.execution.sandbox import Sandbox
from multiplt.testgen.validate import KILLED_RUNNER, Check, coverage_path, run_checks

FN = 'def add(a, b):\n    """Add."""\n    if a > 100:\n        return 0\n    return a + b\n'


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox() as sb:
        sb.check()
        yield sb


def _run(sandbox, asserts, prefix=FN, timeout=1.0):
    check = Check("k", prefix, "add", asserts)
    run_checks(sandbox, [check], timeout=timeout, cov_path=coverage_path())
    return check


def test_verdicts_statuses_coverage_and_types(sandbox):
    check = _run(sandbox, ["assert add(1, 2) == 3", "assert add(1, 2) == 4",
                           "assert add(1, 'x') == 1", "assert add(1.5, 2) == 3.5"])
    assert sandbox.mode == "warm"
    assert check.statuses == ["OK", "AssertionError", "TypeError", "OK"]
    # statements of the program: def (1), if (3), return 0 (4), return a + b (5)
    assert check.coverage["statements"] == [1, 3, 4, 5] and check.coverage["missing"] == [4]
    assert check.coverage["signatures"] == [[[["int"], ["int"]], ["int"], []],
                                            [[["float"], ["int"]], ["float"], []]]


@pytest.mark.slow
def test_infinite_loop_times_out_and_100_mb_of_output_passes(sandbox):
    check = _run(sandbox, ["assert add(1, 2) == next(x for x in iter(int, 1) if x)",
                           "assert add(1, 2) == (print('x' * 100_000_000) or 3)",
                           "assert add(2, 2) == 4"], timeout=5.0)
    assert check.statuses == ["Timeout", "OK", "OK"]


KILL = "assert add(1, 1) == __import__('os').kill(__import__('os').getppid(), {})"


def test_an_assert_that_kills_its_runner_fails_alone(sandbox):
    check = _run(sandbox, ["assert add(1, 2) == 3", KILL.format(9), "assert add(2, 2) == 4",
                           "assert add(3, 3) == 6"])
    assert check.statuses == ["OK", KILLED_RUNNER, "OK", "OK"]
    assert check.coverage["missing"] == [4]


@pytest.mark.slow
def test_an_assert_that_stops_its_runner_fails_alone_after_the_batch_limit(sandbox):
    check = _run(sandbox, ["assert add(1, 2) == 3", KILL.format(19), "assert add(3, 3) == 6"])
    assert check.statuses == ["OK", KILLED_RUNNER, "OK"]


def test_leftovers_of_one_assert_do_not_reach_the_next(sandbox):
    prefix = FN + '''
import os, time

def leave_file():
    open("../left.txt", "w").write("x")
    return 1

def leave_process():
    if os.fork() == 0:
        os.setsid()
        time.sleep(0.3)
        open("../late.txt", "w").write("x")
        os._exit(0)
    return 1

def clean():
    time.sleep(0.6)
    return int(not os.path.exists("../left.txt") and not os.path.exists("../late.txt"))
'''
    check = _run(sandbox, ["assert add(leave_file(), 0) == 1", "assert add(leave_process(), 0) == 1",
                           "assert add(clean(), 0) == 1"], prefix=prefix)
    assert check.statuses == ["OK", "OK", "OK"]


def test_a_child_cannot_write_a_verdict_for_another_assert(sandbox):
    prefix = FN + '''
import os, json

def forge():
    line = (json.dumps({"f": 0, "a": 1, "exit": 0, "status": "OK"}) + "\\n").encode()
    for fd in range(3, 256):
        try:
            os.write(fd, line)
        except OSError:
            pass
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    with open(f"/proc/{pid}/fd/{fd}", "w") as f:
                        f.write(line.decode())
            except OSError:
                pass
    return 0
'''
    check = _run(sandbox, ["assert add(forge(), 0) == 1", "assert add(1, 1) == 3"], prefix=prefix)
    assert check.statuses == ["AssertionError", "AssertionError"]


def test_passing_alone_but_failing_together_still_measures_coverage(sandbox):
    prefix = "STATE = []\n\n" + 'def add(a, b):\n    STATE.append(a)\n    return a + b + len(STATE) - 1\n'
    check = _run(sandbox, ["assert add(1, 2) == 3", "assert add(2, 2) == 4"], prefix=prefix)
    assert check.statuses == ["OK", "OK"]
    assert check.coverage["errors"] == 1 and check.coverage["missing"] == []


def test_validation_without_coverage_finishes(sandbox):
    check = Check("k", FN, "add", ["assert add(1, 2) == 3", "assert add(1, 2) == 0"])
    run_checks(sandbox, [check], timeout=1.0, cov_path=None)
    assert check.statuses == ["OK", "AssertionError"]
    assert check.coverage == {"error": "coverage not measured"}


@pytest.mark.slow
def test_fork_bomb_memory_and_recursion_fail_and_the_next_asserts_still_pass(sandbox):
    prefix = "import os\n\n" + FN
    check = _run(sandbox, ["assert add(1, 2) == [os.fork() for _ in iter(int, 1)]",
                           "assert add(1, 2) == 3",
                           "assert add(1, 2) == len(bytearray(10 ** 10))",
                           "assert add(1, 2) == (lambda f: f(f))(lambda f: f(f))",
                           "assert add(2, 2) == 4"], prefix=prefix, timeout=3.0)
    assert check.statuses[1:] == ["OK", "MemoryError", "RecursionError", "OK"]
    assert check.statuses[0] not in ("OK", KILLED_RUNNER)


def test_unsafe_mode_gives_the_same_verdicts_and_leaves_no_process():
    import os

    with Sandbox(unsafe_no_sandbox=True) as unsafe:
        check = _run(unsafe, ["assert add(1, 2) == 3", "assert add(1, 2) == 4",
                              "assert add(1, [__import__('os').fork() or "
                              "__import__('time').sleep(30), 2][1]) == 3",
                              "assert add(2, 2) == 4"])
        root = unsafe._tmp_root
    assert check.statuses == ["OK", "AssertionError", "OK", "OK"]
    assert check.coverage["missing"] == [4]
    assert not [p for p in os.listdir("/proc") if p.isdigit() and _orphan_of_ours(p, root)]


def _orphan_of_ours(pid: str, root: str) -> bool:
    """A leftover unsandboxed runner child of this sandbox: its command line is the runner's
    program and its working folder is one of this sandbox's (under `root`, maybe deleted by
    now). Runners of other test processes on the machine, sandboxed or unsafe, have their own
    folders."""
    import os

    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    return b"program.py" in cmd and b"python3" in cmd and cwd.startswith(root.rstrip("/") + "/")


def test_coverage_under_tmp_is_refused_with_the_reason(monkeypatch):
    """The sandbox mounts its own /tmp: coverage.py installed under the host's /tmp would be
    invisible to the runner, so the platform says so instead of failing inside the sandbox: a
    setup error (exit 2, not retried). Without a sandbox the runner sees the host's /tmp."""
    import coverage

    from multiplt.errors import MultipltError, PlatformError

    site = "/tmp/clone/.venv/lib/python3.11/site-packages"
    monkeypatch.setattr(coverage, "__file__", f"{site}/coverage/__init__.py")
    with pytest.raises(MultipltError, match="installed under /tmp") as refused:
        coverage_path()
    assert not isinstance(refused.value, PlatformError) and refused.value.exit_code == 2
    assert coverage_path(unsafe_no_sandbox=True) == site


def test_a_hostile_assert_does_not_spoil_the_asserts_of_another_function(sandbox):
    """Shared writable places (the scratch /tmp, /dev/shm) are put back after every child: a mode
    taken away is restored and what was left is removed, so the honest asserts of the next
    function of the batch pass."""
    os_ = "__import__('os')"
    hostile = Check("h", FN, "add", [
        f"assert add(1, 2) == ({os_}.chmod('/tmp', 0o500) or 3)",
        "assert add(1, 2) == (open('/dev/shm/left-behind', 'w').write('x') and 3)",
        f"assert add(1, 2) == ({os_}.mkdir('/dev/shm/d') or {os_}.mkdir('/dev/shm/d/e') or "
        f"{os_}.chmod('/dev/shm/d', 0) or {os_}.chmod('/dev/shm', 0o500) or 3)",
        f"assert add(1, 2) == ({os_}.mkdir('../locked') or {os_}.chmod('..', 0o500) or "
        f"{os_}.chmod('../locked', 0) or 3)"])
    honest = Check("o", FN, "add", [
        "assert add(1, 2) == 3",
        f"assert add(2, 2) == (4 if not {os_}.listdir('/dev/shm') else 0)",
        f"assert add(2, 3) == (5 if [n for n in {os_}.listdir('..') if not n.endswith('.py')] "
        f"== [{os_}.path.basename({os_}.getcwd())] else 0)",
        "assert add(3, 3) == (open('/dev/shm/mine', 'w').write('ab') + 4)",
        "assert add(4, 4) == (open('../mine', 'w').write('abcd') + 4)"])
    run_checks(sandbox, [hostile, honest], timeout=2.0, cov_path=coverage_path())
    assert hostile.statuses == ["OK", "OK", "OK", "OK"]
    assert honest.statuses == ["OK", "OK", "OK", "OK", "OK"]
    assert honest.coverage["missing"] == [4]


def test_an_assert_that_leaves_what_cannot_be_undone_fails_alone(sandbox):
    """A change the runner cannot put back (here: its own program file, which it cannot
    rewrite from memory) ends the batch: that assert is KilledRunner, the rest run again in a
    fresh program and pass."""
    leave = ("assert add(1, 1) == [open('/tmp/' + n, 'a').write('#') for n in "
             "__import__('os').listdir('/tmp') if n.endswith('.py')][0]")
    check = _run(sandbox, ["assert add(1, 2) == 3", leave, "assert add(2, 2) == 4",
                           "assert add(3, 3) == 6"])
    assert check.statuses == ["OK", KILLED_RUNNER, "OK", "OK"]


def test_a_child_cannot_report_a_verdict_only_the_runner_gives(sandbox):
    prefix = FN + '''
import os

def claim(word):
    for fd in range(3, 256):
        try:
            os.write(fd, ("\\n" + word).encode())
        except OSError:
            pass
    os._exit(1)
'''
    check = _run(sandbox, ["assert add(claim('OK'), 0) == 1", "assert add(claim('Timeout'), 0) == 1",
                           "assert add(claim('KilledRunner'), 0) == 1",
                           "assert add(claim('ValueError'), 0) == 1"], prefix=prefix)
    assert check.statuses == ["exit 1", "exit 1", "exit 1", "ValueError"]


FORGE = ("assert add(1, 2) == (setattr(__import__('json'), 'dump', lambda o, fp, **k: "
         "fp.write({!r})) or 3)")


def test_a_forged_coverage_report_is_that_functions_coverage_error(sandbox):
    for payload in ['{"statements": 5, "missing": []}', "[1]",
                    '{"statements": [3], "missing": [], "signatures": [[[[]], ["int"], []]]}',
                    '{"statements": [1, 3, 4, 5, 7], "missing": []}']:
        check = _run(sandbox, ["assert add(2, 2) == 4", FORGE.format(payload)])
        assert check.statuses == ["OK", "OK"]
        assert check.coverage["error"].startswith("malformed coverage report: "), payload
