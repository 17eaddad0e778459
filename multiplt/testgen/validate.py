"""Run each function's asserts in the sandbox, one child per assert, and measure coverage there.

The host side of runner.py: functions are packed into batches (one sandboxed Python program per
batch, run through `multiplt.execution.sandbox.Sandbox` like every untrusted program), so an
assert costs a fork of a warm interpreter rather than a fresh interpreter. If a batch's program
dies early (an assert killed or stopped its runner, or the batch ran past its limit), the assert
in flight is failed with status `KilledRunner` and the rest run again in a new program.

Two hash seeds: a batch's asserts first run under PYTHONHASHSEED=SCREEN_HASH_SEED (1); those that
pass run again under the seed every Python program runs with (python.HASH_SEED, 0; so does
`multiplt execute`), followed by the function's coverage-and-types run of the asserts that
passed under both. An assert that passed under the first seed and not under the second (whose
verdict depends on the order of a set or dict of strings, e.g. `list(set(text)) == [...]`) is
`Flaky`: not a test (it would pass or fail by chance in another interpreter or language).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import json
import os

from multiplt import languages
from multiplt.errors import MultipltError, PlatformError
from multiplt.execution.retry import run_with_retries
from multiplt.execution.sandbox import Sandbox

KILLED_RUNNER = "KilledRunner"
#: an assert that passed under SCREEN_HASH_SEED and not under python.HASH_SEED
FLAKY = "Flaky"
#: the string hash seed asserts are first run under (any other than python.HASH_SEED would do)
SCREEN_HASH_SEED = 1
# an assert's status while it waits for its run under the main seed (never saved: a function is
# saved only when done)
_SCREENED = "OK under the screening seed"
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
        """The asserts that passed under both hash seeds."""
        return [a for a, s in zip(self.asserts, self.statuses) if s == "OK"]

    @property
    def done(self) -> bool:
        return (None not in self.statuses and _SCREENED not in self.statuses
                and (self.coverage is not None or not self.passing))


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


def _waiting(check: Check, screening: bool) -> list[int]:
    """The indices of `check`'s asserts that the screening run (not run yet) or the main run
    (passed the screening) runs."""
    wanted = None if screening else _SCREENED
    return [i for i, s in enumerate(check.statuses) if s == wanted]


def program(checks: list[Check], timeout: float, coverage_timeout: float, own_namespaces: bool,
            cov_path: str | None, screening: bool = False) -> str:
    """The sandboxed program for the unfinished part of `checks`: the screening run (asserts
    not run yet, no coverage) or the main run (asserts that passed the screening, then each
    function's coverage run)."""
    functions = []
    for c in checks:
        todo = [c.asserts[i] for i in _waiting(c, screening)]
        functions.append({"key": c.key, "prefix": c.prefix, "entrypoint": c.entrypoint,
                          "asserts": todo, "passed": [] if screening else c.passing,
                          "coverage": not screening and c.coverage is None,
                          "coverage_timeout": _coverage_limit(c, timeout, coverage_timeout)})
    job = {"functions": functions, "timeout": timeout, "coverage_timeout": coverage_timeout,
           "coverage_path": None if screening else cov_path,
           "own_namespaces": own_namespaces}
    return runner_source() + f"\n\nmain({json.dumps(job)!r})\n"


def _coverage_limit(check: Check, timeout: float, most: float) -> float:
    """Every assert passed alone within `timeout`, so together they need about the sum."""
    return min(most, timeout * len(check.asserts) + 1.0)


def run_checks(sandbox: Sandbox, checks: list[Check], timeout: float = 5.0,
               coverage_timeout: float = COVERAGE_TIMEOUT_S, cov_path: str | None = None) -> None:
    """Fill every check's statuses and coverage record (coverage.py imported from `cov_path`:
    `coverage_path()`, found in the main thread; worker threads may not read the host's
    site-packages), rerunning after a killed runner: the asserts not run yet under
    SCREEN_HASH_SEED first, then those that passed there under python.HASH_SEED with the
    coverage runs (the module's docstring)."""
    py = languages.get("py")
    pending = [c for c in checks if not c.done]
    while pending:
        screening = [c for c in pending if _waiting(c, True)]
        if screening:
            _run(sandbox, py.with_hash_seed(SCREEN_HASH_SEED), screening, timeout,
                 coverage_timeout, None, True)
        else:
            _run(sandbox, py, pending, timeout, coverage_timeout, cov_path, False)
        pending = [c for c in pending if not c.done]


def _run(sandbox: Sandbox, py, pending: list[Check], timeout: float, coverage_timeout: float,
         cov_path: str | None, screening: bool) -> None:
    """One runner program over `pending` (its screening run, or its main run) and its results."""
    text = program(pending, timeout, coverage_timeout, not sandbox.unsafe, cov_path, screening)
    runs = sum(len(_waiting(c, screening)) for c in pending)
    # a function's coverage run, and where it fails its asserts' runs alone: twice its limit
    covering = 0.0 if screening else 2 * sum(_coverage_limit(c, timeout, coverage_timeout)
                                             for c in pending)
    finished = run_with_retries(sandbox, py, text, runs * timeout + _MARGIN_S + covering)
    complete = _apply(pending, finished.stdout, screening)
    if cov_path is None and not screening:  # validation only: nothing more to wait for
        for c in pending:
            if not _waiting(c, False) and c.coverage is None:
                c.coverage = {"error": "coverage not measured"}
    if not complete:
        if not finished.stdout.startswith('{"ready": true}'):
            raise PlatformError("the testgen runner did not start in the sandbox (exit "
                                f"{finished.exit_code}): {finished.stderr.strip()[-500:]}")
        _blame_first(pending, screening)


#: statuses of the machine, not of the assert's result (a loaded machine, a runner killed for
#: its memory): in the main run they stay what they are, never `Flaky`
_NOT_THE_RESULT = ("Timeout", KILLED_RUNNER)


def _verdict(status: str, screening: bool) -> str:
    """An assert's status from its run's: under the screening seed a pass waits for the main
    run; under the main seed a pass is OK, a timeout or a killed runner stays so, and an
    assertion error or exception differs from the screening's pass (`Flaky`)."""
    if screening:
        return _SCREENED if status == "OK" else status
    if status == "OK" or status in _NOT_THE_RESULT:
        return status
    return FLAKY


def _apply(pending: list[Check], stdout: str, screening: bool = False) -> bool:
    """Record the runner's result lines; True when it reported the whole job."""
    slots = [_waiting(c, screening) for c in pending]
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
            check.coverage = checked_coverage(record["coverage"], check.prefix, check.entrypoint)
        else:
            check.statuses[slots[record["f"]][record["a"]]] = _verdict(record["status"], screening)
    return False


def _blame_first(pending: list[Check], screening: bool = False) -> None:
    """The runner died: the first assert without a verdict of this run was running; it fails
    (`KilledRunner`, in the screening and the main run alike). A function
    whose asserts all have verdicts was in its coverage run: that run failed."""
    for check in pending:
        waiting = _waiting(check, screening)
        if waiting:
            check.statuses[waiting[0]] = _verdict(KILLED_RUNNER, screening)
            return
        if not screening and check.coverage is None and check.passing:
            check.coverage = {"error": "the coverage run killed its runner"}
            return


_SCALARS = ("int", "float", "bool", "str", "none")
_SEQUENCES = ("list", "vtuple", "tuple")
_MAX_DEPTH = 16  # the runner cuts trees at depth 8 (["other", "too deep"])


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_tree(t, depth: int = 0) -> bool:
    """The runner's type-tree grammar (runner_measure._type_of), which annotate.from_tree reads."""
    if not isinstance(t, list) or not t or depth > _MAX_DEPTH:
        return False
    kind = t[0]
    if kind in _SCALARS:
        return len(t) == 1
    if kind == "other":
        return len(t) == 2 and isinstance(t[1], str)
    if kind in _SEQUENCES:
        return len(t) == 2 and isinstance(t[1], list) and all(_is_tree(x, depth + 1) for x in t[1])
    if kind == "dict":
        return len(t) == 3 and all(isinstance(part, list) and all(_is_tree(x, depth + 1)
                                                                  for x in part) for part in t[1:])
    return False


def _is_signature(sig) -> bool:
    """[argument trees, result tree, sorted keyword names]."""
    return (isinstance(sig, list) and len(sig) == 3 and isinstance(sig[0], list)
            and all(_is_tree(t) for t in sig[0]) and _is_tree(sig[1]) and isinstance(sig[2], list)
            and all(isinstance(k, str) for k in sig[2]))


def statement_lines(program: str) -> set[int]:
    """Every line where a statement of `program` starts (a decorated definition's decorator lines,
    an `except` and a `case` line included): coverage.py reports statements on these only."""
    lines = set()
    for node in ast.walk(ast.parse(program)):
        if isinstance(node, (ast.stmt, ast.excepthandler)):
            lines.add(node.lineno)
            lines.update(d.lineno for d in getattr(node, "decorator_list", ()))
        elif isinstance(node, ast.match_case):
            lines.add(node.pattern.lineno)
    return lines


def coverage_problem(record, program: str, entrypoint: str) -> str | None:
    """What is wrong with a coverage record's shape, or None. Records come from the sandboxed
    runner (a coverage child writes them, and the code it measures could forge them) and from
    saved parts: `statements` and `missing` lists of line numbers of `program`'s statements (the
    entry point's body included, found with ast), `missing` within `statements`; `signatures`
    following the type-tree grammar; `errors` a count. `entrypoint` must be a top-level def."""
    if not isinstance(record, dict):
        return "not an object"
    if "error" in record:
        return None if isinstance(record["error"], str) else "error is not a string"
    statements, missing = record.get("statements"), record.get("missing")
    if not isinstance(statements, list) or not all(_is_int(s) for s in statements):
        return "statements is not a list of line numbers"
    if not isinstance(missing, list) or not all(_is_int(s) for s in missing):
        return "missing is not a list of line numbers"
    if not set(missing) <= set(statements):
        return "missing lines that are not statements"
    try:
        known = statement_lines(program)
        has_entry = any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                        and n.name == entrypoint for n in ast.parse(program).body)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "the function's source cannot be read"
    if not has_entry:
        return f"no top-level function {entrypoint}"
    if not set(statements) <= known:
        return "statements on lines that hold none"
    signatures = record.get("signatures", [])
    if not isinstance(signatures, list) or not all(_is_signature(s) for s in signatures):
        return "signatures do not follow the type-tree grammar"
    if not _is_int(record.get("errors", 0)):
        return "errors is not a count"
    return None


def checked_coverage(record, program: str, entrypoint: str) -> dict:
    """`record` when it is well formed (coverage_problem), else that function's coverage error."""
    problem = coverage_problem(record, program, entrypoint)
    return record if problem is None else {"error": f"malformed coverage report: {problem}"}
