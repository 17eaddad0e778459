"""The local runtime's reader (plugins/multiplt_airflow/local_stage.py): "\\r" ends a line too, so a
progress bar that a library redraws in place reaches the task log state by state while the
command runs, not as one record when it ends."""

from __future__ import annotations

import sys

import pytest

from multiplt_airflow.local_stage import MultipltStageOperator, StageCommandFailed


class _Log:
    """Stands in for the task logger; calls `on_line(line)` for every record."""

    def __init__(self, on_line=lambda line: None):
        self.lines: list[str] = []
        self.on_line = on_line

    def info(self, fmt, *args):
        line = fmt % args
        self.lines.append(line)
        self.on_line(line)

    def warning(self, fmt, *args):  # Airflow's note that execute() runs outside a task runner
        pass


def _operator(monkeypatch, code: str, log: _Log, **kwargs) -> MultipltStageOperator:
    monkeypatch.setattr(MultipltStageOperator, "command", lambda self: [sys.executable, "-c", code])
    monkeypatch.setattr(MultipltStageOperator, "log", property(lambda self: log))
    return MultipltStageOperator(task_id="stage", argv=["generate"], **kwargs)


def test_a_state_ended_by_cr_is_logged_while_the_command_still_runs(monkeypatch, tmp_path):
    """The command draws "1/3", then "2/3" over it ("\\r", no newline), then waits until the task
    log has the first state (the test's logger creates a file when it sees it) before it goes on.
    A state is complete once the next "\\r" or "\\n" comes, so each is logged as the next is drawn."""
    seen = tmp_path / "seen"
    code = ("import os, sys, time\n"
            "sys.stderr.write('\\rwork:  33%| 1/3\\rwork:  67%| 2/3'); sys.stderr.flush()\n"
            "for _ in range(200):  # up to 20 s: a reader that waits for a newline never logs it\n"
            f"    if os.path.exists({str(seen)!r}):\n"
            "        break\n"
            "    time.sleep(0.1)\n"
            "else:\n"
            "    sys.exit(1)\n"
            "sys.stderr.write('\\rwork: 100%| 3/3\\n')\n")

    def on_line(line):
        if line == "[stderr] work:  33%| 1/3":
            seen.touch()

    log = _Log(on_line)
    _operator(monkeypatch, code, log).execute({})
    stderr = [line for line in log.lines if line.startswith("[stderr]")]
    assert stderr == ["[stderr] work:  33%| 1/3", "[stderr] work:  67%| 2/3", "[stderr] work: 100%| 3/3"], \
        log.lines


def test_line_ends_cr_crlf_and_lf(monkeypatch):
    """"\\r\\n" ends one line, not two; a state padded over a longer one loses its blanks; an empty
    "\\n" line is kept as before; the last line needs no end and is the XCom value."""
    code = ("import sys\n"
            "out = sys.stdout.buffer\n"
            "out.write(b'one\\rtwo   \\r\\nthree\\n\\n'); out.flush()\n"
            "out.write(b'four\\r'); out.flush()\n"
            "out.write(b'\\nlast')\n")
    log = _Log()
    assert _operator(monkeypatch, code, log, do_xcom_push=True).execute({}) == "last"
    assert [line for line in log.lines if not line.startswith(("Running", "multiplt "))] == \
        ["one", "two", "three", "", "four", "last"], log.lines


def test_the_stderr_tail_of_a_failure_holds_the_cr_ended_states(monkeypatch):
    code = ("import sys\n"
            "sys.stderr.write('\\rbar 1/3\\rbar 2/3')\n"
            "sys.stderr.write('\\nmultiplt generate: error: boom\\n')\n"
            "sys.exit(1)\n")
    with pytest.raises(StageCommandFailed) as err:
        _operator(monkeypatch, code, _Log()).execute({})
    assert err.value.stderr_tail == "bar 1/3\nbar 2/3\nmultiplt generate: error: boom"
