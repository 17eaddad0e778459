"""Run each function's asserts in the sandbox, one child per assert, and measure coverage there.

The host side of runner.py: functions are packed into batches (one sandboxed Python program per
batch, run through `multiplt.execution.sandbox.Sandbox` like every untrusted program), so an
assert costs a fork of a warm interpreter rather than a fresh interpreter. If a batch's program
dies early (an assert killed or stopped its runner, or the batch ran past its limit), the assert
in flight is failed with status `KilledRunner` and the rest run again in a new program.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os

from multiplt import languages
from multiplt.errors import MultipltError, PlatformError
from multiplt.execution.retry import run_with_retries
from multiplt.execution.sandbox import Sandbox

KILLED_RUNNER = "KilledRunner"
_MARGIN_S = 10.0  # start-up and coverage import on top of the per-child limits
COVERAGE_TIMEOUT_S = 60.0  # at most, for one function's passing asserts together (MultiPL-T's)


@dataclasses.dataclass
class Check:
    """One function to validate: `prefix` = context + function; `asserts` in order."""

    key: str
    prefix: str
    entrypoint: str
    asserts: list[str]
    statuses: list[str | None] = dataclasses.field(default_factory=list)
    coverage: dict | None = None  # the runner's coverage/types record ({"error": ...} on failure)

    def __post_init__(self):
        if not self.statuses:
            self.statuses = [None] * len(self.asserts)

    @property
    def passing(self) -> list[str]:
        return [a for a, s in zip(self.asserts, self.statuses) if s == "OK"]

    @property
    def done(self) -> bool:
        return None not in self.statuses and (self.coverage is not None or not self.passing)


RUNNER_PARTS = ("runner_process.py", "runner_measure.py", "runner.py")


@functools.lru_cache(maxsize=1)
def runner_source() -> str:
    """The sandbox-side program: its three standard-library-only parts joined in order."""
    here = os.path.dirname(__file__)
    return "\n\n".join(open(os.path.join(here, name), encoding="utf-8").read()
                        for name in RUNNER_PARTS)


def coverage_path(unsafe_no_sandbox: bool = False) -> str:
    """The folder that holds the `coverage` package, for the sandbox's Python to import it from
    (the host file system is visible read-only inside the sandbox). MultipltError (exit 2: a
    setup problem, which no retry mends) when the sandbox would hide it: an install under /tmp,
    which the sandbox replaces with its own. Without a sandbox (`unsafe_no_sandbox`) the runner
    sees the host's /tmp, and such an install is used."""
    import coverage

    # realpath: a symlinked install (a venv layered over another) is read where it really is
    folder = os.path.dirname(os.path.dirname(os.path.realpath(coverage.__file__)))
    if not unsafe_no_sandbox and (folder == "/tmp" or folder.startswith("/tmp/")):
        raise MultipltError(f"coverage.py is installed under /tmp ({folder}), which the sandbox's "
                            "own /tmp hides from the programs that measure coverage: install the "
                            "platform (its .venv) outside /tmp")
    return folder


def program(checks: list[Check], timeout: float, coverage_timeout: float, own_namespaces: bool,
            cov_path: str | None) -> str:
    """The sandboxed program for the unfinished part of `checks`."""
    functions = []
    for c in checks:
        todo = [a for a, s in zip(c.asserts, c.statuses) if s is None]
        functions.append({"prefix": c.prefix, "entrypoint": c.entrypoint, "asserts": todo,
                          "passed": c.passing, "coverage": c.coverage is None,
                          "coverage_timeout": _coverage_limit(c, timeout, coverage_timeout)})
    job = {"functions": functions, "timeout": timeout, "coverage_timeout": coverage_timeout,
           "coverage_path": cov_path,
           "own_namespaces": own_namespaces}
    return runner_source() + f"\n\nmain({json.dumps(job)!r})\n"


def _coverage_limit(check: Check, timeout: float, most: float) -> float:
    """Every assert passed alone within `timeout`, so together they need about the sum."""
    return min(most, timeout * len(check.asserts) + 1.0)


def run_checks(sandbox: Sandbox, checks: list[Check], timeout: float = 5.0,
               coverage_timeout: float = COVERAGE_TIMEOUT_S, cov_path: str | None = None) -> None:
    """Fill every check's statuses and coverage record (coverage.py imported from `cov_path`:
    `coverage_path()`, found in the main thread; worker threads may not read the host's
    site-packages), rerunning after a killed runner."""
    py = languages.get("py")
    pending = [c for c in checks if not c.done]
    while pending:
        text = program(pending, timeout, coverage_timeout, not sandbox.unsafe, cov_path)
        limit = (sum(s is None for c in pending for s in c.statuses) * timeout + _MARGIN_S
                 + sum(_coverage_limit(c, timeout, coverage_timeout) for c in pending))
        finished = run_with_retries(sandbox, py, text, limit)
        complete = _apply(pending, finished.stdout)
        if cov_path is None:  # validation only: nothing more to wait for
            for c in pending:
                if None not in c.statuses and c.coverage is None:
                    c.coverage = {"error": "coverage not measured"}
        if not complete:
            if not finished.stdout.startswith('{"ready": true}'):
                raise PlatformError("the testgen runner did not start in the sandbox (exit "
                                    f"{finished.exit_code}): {finished.stderr.strip()[-500:]}")
            _blame_first(pending)
        pending = [c for c in pending if not c.done]


def _apply(pending: list[Check], stdout: str) -> bool:
    """Record the runner's result lines; True when it reported the whole job."""
    slots = [[i for i, s in enumerate(c.statuses) if s is None] for c in pending]
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("done"):
            return True
        if "f" not in record:
            continue
        check = pending[record["f"]]
        if "coverage" in record:
            check.coverage = record["coverage"]
        else:
            check.statuses[slots[record["f"]][record["a"]]] = record["status"]
    return False


def _blame_first(pending: list[Check]) -> None:
    """The runner died: the first assert without a verdict was running; it fails. A function
    whose asserts all have verdicts was in its coverage run: that run failed."""
    for check in pending:
        for i, status in enumerate(check.statuses):
            if status is None:
                check.statuses[i] = KILLED_RUNNER
                return
        if check.coverage is None and check.passing:
            check.coverage = {"error": "the coverage run killed its runner"}
            return
