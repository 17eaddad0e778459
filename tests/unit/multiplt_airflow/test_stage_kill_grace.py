"""A killed task's command gets its grace within the time Airflow leaves the task process.

A task cleared, marked failed or whose run is marked failed learns it at its next heartbeat;
Airflow 3.3.2's task supervisor then sends SIGTERM to the task's process group and SIGKILL
`escalation_delay` (5 s, no setting) later. The task process runs the operator's on_kill on the
SIGTERM (the task SDK's `_on_term`). The local runtime's on_kill used to `proc.wait(10)`: run in
the signal handler of the thread whose `proc.wait()` holds the Popen's wait lock, it could not see
the command end and always waited the 10 s, so every killed local task was SIGKILLed mid-wait.
Both runtimes now end the command within `KILL_GRACE_S`, which fits: the local runtime's command
gets SIGTERM, then SIGKILL after the grace, on_kill returns as soon as it has ended, and the task
process ends on its own; the docker runtime stops the container with that grace and removes it
(the provider's stop used the container's 10 s, so the task process never removed it)."""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from multiplt_airflow.local_stage import KILL_GRACE_S

REPO = Path(__file__).resolve().parents[3]


def airflow_escalation_delay() -> float:
    """Seconds between the supervisor's SIGTERM and SIGKILL of a killed task, as the installed
    Airflow has it: ActivitySubprocess.kill's default, which the heartbeat's kill does not change."""
    from airflow.sdk.execution_time.supervisor import ActivitySubprocess

    assert "self.kill(signal.SIGTERM, force=True)" in inspect.getsource(
        ActivitySubprocess._send_heartbeat_if_needed)
    return inspect.signature(ActivitySubprocess.kill).parameters["escalation_delay"].default


def test_the_grace_fits_airflows_escalation():
    assert airflow_escalation_delay() == 5.0  # Airflow 3.3.2; the docs say 5 s
    assert KILL_GRACE_S + 1 <= airflow_escalation_delay()


TASK = """
import os, signal, sys
from multiplt_airflow.local_stage import MultipltStageOperator

code = sys.argv[1]

class Log:
    def info(self, fmt, *args):
        print(fmt % args, flush=True)
    warning = info

MultipltStageOperator.command = lambda self: [sys.executable, "-c", code]
MultipltStageOperator.log = property(lambda self: Log())
op = MultipltStageOperator(task_id="train", argv=["train"])
signal.signal(signal.SIGTERM, lambda signum, frame: op.on_kill())  # the task SDK's _on_term
try:
    op.execute({})
except Exception as exc:
    print("task failed:", exc, flush=True)
    sys.exit(1)
"""


def command(ready: Path, cleaned: Path, cleanup_s: float | None) -> str:
    """A command that, on SIGTERM, takes `cleanup_s` to clean up (a train releasing its lease;
    a second SIGTERM is ignored, as multiplt's handler does), or ignores it (None: hung)."""
    return textwrap.dedent(f"""
        import os, signal, sys, time
        state = []
        def term(signum, frame):
            if state:
                return
            state.append(1)
            time.sleep({cleanup_s!r})
            open({str(cleaned)!r}, "w").close()
            sys.exit(143)
        signal.signal(signal.SIGTERM, {"signal.SIG_IGN" if cleanup_s is None else "term"})
        with open({str(ready)!r}, "w") as f:
            f.write(str(os.getpid()))
        while True:
            time.sleep(0.1)
    """)


@pytest.mark.parametrize("cleanup_s", [1.0, None], ids=["cleans-up", "hung"])
def test_a_killed_local_stage_ends_before_airflows_sigkill(tmp_path, cleanup_s):
    """The supervisor's kill, as Airflow 3.3.2 does it: SIGTERM to the task's process group (its
    own, as the supervisor starts it), SIGKILL to the group `escalation_delay` later. The task
    process must end by itself before that: the command had its grace (a cleanup within it
    completes) and a hung command is SIGKILLed by on_kill, not with its task process."""
    delay = airflow_escalation_delay()
    ready, cleaned = tmp_path / "ready", tmp_path / "cleaned"
    (tmp_path / "task.py").write_text(TASK)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)])}
    task = subprocess.Popen([sys.executable, str(tmp_path / "task.py"), command(ready, cleaned, cleanup_s)],
                            env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (ready.exists() and ready.read_text()):
            assert task.poll() is None, task.communicate()[0]
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.05)
        child = int(ready.read_text())
        os.killpg(task.pid, signal.SIGTERM)
        sent = time.monotonic()
        try:
            task.wait(delay)
            sigkilled = False
        except subprocess.TimeoutExpired:
            os.killpg(task.pid, signal.SIGKILL)
            task.wait()
            sigkilled = True
        took = time.monotonic() - sent
        output = task.communicate()[0]
    finally:
        if task.poll() is None:
            os.killpg(task.pid, signal.SIGKILL)
            task.wait()
    assert not sigkilled, f"the task process was still in on_kill after {delay} s:\n{output}"
    assert task.returncode == 1 and "task failed:" in output, output
    assert took < delay
    if cleanup_s is not None:
        assert cleaned.exists()  # its cleanup was not cut short
        assert took < KILL_GRACE_S  # on_kill returned when the command ended, not at the grace
    else:
        assert KILL_GRACE_S <= took
        with pytest.raises(ProcessLookupError):
            os.kill(child, 0)


class StoppingDocker:
    """Stands in for docker.APIClient in on_kill: records stop and remove."""

    def __init__(self):
        self.calls = []

    def stop(self, container, timeout=None):
        self.calls.append(("stop", container, timeout))

    def remove_container(self, container, **kwargs):
        self.calls.append(("remove", container, kwargs))


def test_a_killed_docker_stage_stops_its_container_within_the_grace_and_removes_it(monkeypatch):
    from multiplt_airflow.docker_stage import MultipltDockerOperator

    fake = StoppingDocker()
    monkeypatch.setattr(MultipltDockerOperator, "cli", property(lambda self: fake))
    op = MultipltDockerOperator(task_id="train", image="worker", command=["train"])
    op.on_kill()  # before the container exists: nothing to stop
    assert fake.calls == []
    op.container = {"Id": "c0ffee"}
    op.on_kill()
    assert fake.calls == [("stop", "c0ffee", KILL_GRACE_S), ("remove", "c0ffee", {"force": True})]
    assert op.auto_remove == "never"  # execute's `finally` does not remove it a second time
