"""The local runtime: a task that runs ``multiplt <argv...>`` as a subprocess of the task process.

Its output streams into the task log line by line as it is written ("\\r" ends a line too: a
progress bar that a library redraws in place logs its states while it runs); a non-zero exit fails the
task with the command's exit code and the tail of its stderr. The subprocess inherits the
worker's environment less the credentials its command cannot use (``credentials.needed``), and
gets those it can in its environment (never in argv, rendered fields or XCom); every credential
of the worker is registered with Airflow's secrets masker before it starts.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import sys
import threading
from typing import Sequence

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from multiplt_airflow import credentials

STDERR_TAIL_LINES = 30


class StageCommandFailed(AirflowException):
    """A stage's ``multiplt`` command exited non-zero."""

    def __init__(self, argv: Sequence[str], exit_code: int, stderr_tail: str):
        super().__init__(f"`multiplt {' '.join(argv[:2])} ...` exited with code {exit_code}; "
                         f"last lines of its stderr:\n{stderr_tail}")
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail


class StageInputRejected(StageCommandFailed, AirflowFailException):
    """Exit code 2: the command rejected its input (bad URI, config, record). Retrying cannot
    help, so the task fails at once instead of using its retries."""


BAD_INPUT_EXIT_CODE = 2  # multiplt.errors.MultipltError.exit_code, and argparse's usage errors

#: seconds a killed task's command gets between SIGTERM and SIGKILL, in both runtimes (on_kill
#: here and in docker_stage). A task cleared, marked failed or whose run is marked failed learns
#: it at its next heartbeat: Airflow 3.3.2's task supervisor then sends SIGTERM to the task's
#: process group (the local runtime's command is in it) and SIGKILL 5 s later
#: (airflow.sdk.execution_time.supervisor: ActivitySubprocess.kill's `escalation_delay`, fixed,
#: no setting; `[core] killed_task_cleanup_time` is not read there). on_kill fits in those 5 s,
#: so that the command's end is logged and a container removed before the task process is killed.
KILL_GRACE_S = 3


class MultipltStageOperator(BaseOperator):
    """Run ``multiplt <argv...>`` locally. ``argv`` is Jinja-templated, element by element.

    With ``do_xcom_push=True`` the last non-empty line of stdout is the task's return value.
    """

    template_fields: Sequence[str] = ("argv",)
    ui_color = "#e8f0fe"

    def __init__(self, *, argv: Sequence[str], extra_env: dict[str, str] | None = None,
                 **kwargs):
        kwargs.setdefault("do_xcom_push", False)
        super().__init__(**kwargs)
        self.argv = argv
        self.extra_env = extra_env or {}
        self._proc: subprocess.Popen | None = None

    def command(self) -> list[str]:
        if isinstance(self.argv, str) or not all(isinstance(a, (str, int, float)) for a in self.argv):
            raise AirflowException(f"argv must be a list of strings, got {self.argv!r}")
        return [sys.executable, "-m", "multiplt", *map(str, self.argv)]

    def execute(self, context):
        cmd = self.command()
        # the worker's credentials (and the Hub token of the huggingface_default connection)
        # that the command can use: private environment of the subprocess, never in argv; the
        # others are not inherited either. All of them are masked and redacted from the log.
        worker = credentials.from_environment()
        credentials.register_masks(worker)
        secrets = credentials.secret_values(worker)
        self.log.info("Running: multiplt %s", " ".join(cmd[3:]))
        argv = [str(a) for a in self.argv]
        env = {**credentials.inherited_environment(os.environ, argv),
               **credentials.for_command(argv, worker), **self.extra_env,
               "PYTHONUNBUFFERED": "1"}
        self._proc = proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             stdin=subprocess.DEVNULL, env=env)
        stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        last_stdout: list[str] = []

        def pump(stream, sink, prefix):
            for raw in _lines(stream):
                line = credentials.redact(raw.decode(errors="replace"), secrets)
                sink(line)
                self.log.info("%s%s", prefix, line)
            stream.close()

        threads = [
            threading.Thread(target=pump, args=(proc.stdout, _keep_last(last_stdout), ""), daemon=True),
            threading.Thread(target=pump, args=(proc.stderr, stderr_tail.append, "[stderr] "),
                             daemon=True),
        ]
        for t in threads:
            t.start()
        exit_code = proc.wait()
        for t in threads:
            t.join()
        self._proc = None
        if exit_code != 0:
            failure = (StageInputRejected if exit_code == BAD_INPUT_EXIT_CODE
                       else StageCommandFailed)
            raise failure(self.argv, exit_code, "\n".join(stderr_tail))
        self.log.info("multiplt %s finished (exit 0)", self.argv[0] if self.argv else "")
        return last_stdout[0] if (self.do_xcom_push and last_stdout) else None

    def on_kill(self) -> None:
        """SIGTERM to the command (which ends as on Ctrl-C: a train releases its output's
        lease), SIGKILL when it has not ended after KILL_GRACE_S."""
        import time

        proc = self._proc
        if proc is None or _ended(proc):
            return
        proc.terminate()
        deadline = time.monotonic() + KILL_GRACE_S
        while not _ended(proc):
            if time.monotonic() >= deadline:
                proc.kill()
                return
            time.sleep(0.05)


def _ended(proc: subprocess.Popen) -> bool:
    """Whether the command has ended, without reaping it. on_kill runs in the SIGTERM handler of
    the thread that execute's `proc.wait()` blocks, which holds the Popen's wait lock: there
    `proc.poll()` and `proc.wait(timeout)` cannot see the end (they would wait out any timeout),
    and reaping it here would leave that wait without its exit code. The waiting `proc.wait()`
    reaps it once on_kill returns."""
    if proc.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # reaped already
        return True


def _keep_last(holder: list[str]):
    def sink(line: str) -> None:
        if line.strip():
            holder[:] = [line]
    return sink


_BREAK = re.compile(rb"\r\n|\r|\n")


def _lines(stream):
    """The lines of a byte stream (a pipe) as they arrive: `split_lines` over its reads."""
    return split_lines(iter(lambda: stream.read1(65536), b""))


def split_lines(chunks):
    """The lines of an iterable of byte chunks as they arrive, without their ends. "\\n", "\\r\\n"
    and "\\r" end a line (a bar redrawn in place: "\\rstate 1\\rstate 2"). A line ended by "\\r" or
    "\\r\\n" loses its trailing blanks (a shorter state padded over a longer one) and is skipped
    when that leaves it empty; a "\\r\\n" split between two chunks ends one line. Also used by the
    docker runtime (docker_stage), whose provider would split container output on "\\n" only."""
    pending, after_cr = b"", False
    for chunk in chunks:
        if not chunk:
            continue
        if isinstance(chunk, str):
            chunk = chunk.encode()
        if after_cr and chunk.startswith(b"\n"):  # the rest of a "\r\n" whose "\r" ended a line
            chunk = chunk[1:]
        pending += chunk
        start = 0
        for brk in _BREAK.finditer(pending):
            line = pending[start:brk.start()]
            start = brk.end()
            if brk.group() != b"\n":
                line = line.rstrip()
                if not line:
                    continue
            yield line
        pending, after_cr = pending[start:], pending.endswith(b"\r")
    if pending:  # the last line, with no end
        yield pending
