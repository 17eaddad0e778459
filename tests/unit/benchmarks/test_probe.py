"""`benchmark build` runs each source problem's canonical solution and tests: code from a path, an
S3 object or a dataset, so it runs in the execution sandbox (as uid 65534, without the caller's
environment, on a read-only host), one program per problem, and a problem that ignores its time
limit is killed without taking the others down. Where no sandbox starts (the worker image) the
programs run as plain children, with a warning giving the sandbox's reason, and still without the
caller's environment (multiplt/execution/runners.py: unsafe_env)."""

from __future__ import annotations

import os
import shutil

import pytest

from multiplt.benchmarks import probe
from multiplt.errors import PlatformError
from multiplt.execution.bwrap import NOBODY

pytestmark = pytest.mark.skipif(not shutil.which("bwrap"), reason="bubblewrap not installed")


def problem(key, body, check="    candidate()\n"):
    return {"key": key, "entry_point": "f",
            "code": f"def f():\n{body}\n\ndef check(candidate):\n{check}"}


SPY = problem("spy", "    import os\n    return (os.environ.get('MULTIPLT_PROBE_SECRET'), os.getuid())")


def test_a_source_problem_runs_in_the_sandbox(tmp_path, monkeypatch):
    monkeypatch.setenv("MULTIPLT_PROBE_SECRET", "s3cret")  # a token of the caller's
    target = tmp_path / "planted"
    write = problem("write", f"    open({str(target)!r}, 'w').write('x')\n    return 1")
    add = problem("add", "    return 2 + 3", "    assert candidate() == 5\n")
    rows = probe.run([SPY, write, add], timeout=5.0)
    assert rows["spy"]["calls"] == [["()", repr((None, NOBODY))]] and rows["spy"]["error"] is None
    assert rows["write"]["error"].split(":")[0] in ("FileNotFoundError", "OSError", "PermissionError")
    assert not target.exists()  # the sandbox's /tmp is its own; the rest of the host is read-only
    assert rows["add"]["calls"] == [["()", "5"]] and rows["add"]["error"] is None


def test_a_problem_that_ignores_its_time_limit_is_killed_alone(monkeypatch):
    monkeypatch.setattr(probe, "GRACE_S", 1.0)
    stuck = problem("stuck", "    import signal\n    signal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
                             "    while True:\n        pass")
    rows = probe.run([stuck, problem("ok", "    return 1")], timeout=1.0, workers=2)
    assert rows["stuck"]["error"] == "killed after 2s (the problem ignores its time limit)"
    assert rows["ok"]["calls"] == [["()", "1"]]


def test_without_isolation_it_runs_plain_children_and_says_why(monkeypatch, caplog):
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "bwrap" else real(name, *a, **k))
    monkeypatch.setenv("MULTIPLT_PROBE_SECRET", "s3cret")
    with caplog.at_level("WARNING", logger="multiplt.benchmarks"):
        rows = probe.run([SPY], timeout=5.0)
    assert rows["spy"]["calls"] == [["()", repr((None, os.getuid()))]]  # plain, but no secret
    assert "no sandbox here" in caplog.text and "bubblewrap" in caplog.text
    caplog.clear()
    rows = probe.run([SPY], timeout=5.0, unsafe_no_sandbox=True)  # on purpose: no fallback message
    assert rows["spy"]["calls"] == [["()", repr((None, os.getuid()))]] and "no sandbox here" not in caplog.text
