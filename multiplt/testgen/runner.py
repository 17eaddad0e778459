"""Sandbox side of testgen, part 3 of 3: the program that validates asserts INSIDE the sandbox
(standard library only; runner_process.py and runner_measure.py come before it in the program).

The host (validate.py) runs the three parts plus a call `main(<job JSON>)` as one sandboxed
Python program. It starts one interpreter, pre-imports common standard-library modules, and then
runs every assert of the job in its own forked child: `context + function + assert` compiled and
run as `__main__` of a fresh module, stdin/stdout/stderr on /dev/null, in a fresh working folder.
An assert passes when its child exits 0 after reporting, on its own pipe, a token this process
drew for it; the child reports it only once the program has run to its end, so a program that
exits while it runs (`exit()`, `sys.exit(0)`: SystemExit, reported as such; `os._exit(0)`: no
token) fails. The exit status only this process sees (waitpid): the child has no handle on the result channel (closed before any untrusted code runs) and cannot
read this process's memory or descriptors (it is made non-dumpable). After each child this
process kills every process the child left behind (it is their subreaper), removes what the
child wrote in the scratch folder (and in the sandbox's /dev/shm), restores those folders' modes
and, in its own IPC namespace, removes every SysV IPC object, so the next assert starts as if
alone. A child that kills or stops this process, or leaves a shared place in a state this
process cannot restore (or changes this program's own file), ends the job early; the host then
marks that assert failed and reruns the rest in a fresh program.

Determinism: every child inherits this interpreter's string hash seed, the PYTHONHASHSEED the
host runs the program under (validate.py: the screening seed, then the main one), and `random`
is seeded from the function's sha1 and the assert's text (`runner_measure._seed`; a coverage
run's: from its asserts), never from the OS, so a run gives the same verdicts every time.

Coverage and types: after its asserts, a function's passing asserts run together in one more
child under coverage.py (imported from the path the host gives), with the entry point wrapped to
record the types of the arguments and results it sees; the child reports the executed statements
and those types. Where that run fails, each passing assert runs alone under coverage and their
records are merged (`_coverage_record`). Result lines are JSON on this process's stdout.
"""

import json
import os
import sys

try:  # in the repository; in the sandbox the joined program already defines these
    from multiplt.testgen.runner_measure import (PROGRAM, _assert_work, _coverage_work,  # noqa: F401
                                                 _merge_reports, _prepared, _read_report, _seed,
                                                 _status, _warm_up)
    from multiplt.testgen.runner_process import (_Channel, _in_child, _kill_descendants,  # noqa: F401
                                                 _libc, _places, _protect_self, _remove_ipc, _wait,
                                                 _wipe)
except ImportError:
    pass

PREIMPORT = ("re", "math", "collections", "itertools", "functools", "string", "typing", "copy",
             "heapq", "bisect", "json", "datetime", "random", "operator", "fractions", "decimal",
             "statistics", "dataclasses", "enum", "textwrap", "unicodedata", "threading")


def main(job_text: str) -> None:
    job = json.loads(job_text)
    libc = _libc()
    _protect_self(libc)
    results_fd = os.dup(1)
    scratch = os.path.dirname(os.path.abspath(__file__))
    places = _places(scratch, os.path.basename(__file__), bool(job.get("own_namespaces")))
    for name in PREIMPORT:
        __import__(name)
    coverage = template = None
    if job.get("coverage_path"):
        sys.path.insert(0, job["coverage_path"])
        import coverage  # noqa: F811 (the host's coverage.py, by path)
        sys.path.remove(job["coverage_path"])
        _warm_up(coverage, scratch)
        template = _prepared(coverage, scratch)

    def emit(record) -> None:
        os.write(results_fd, (json.dumps(record) + "\n").encode())

    emit({"ready": True})
    runs = 0

    def child(work, limit: float):
        """(exit code, timed out, its channel's text, its report.json) of one child; None when
        the shared places cannot be put back (the runner must end)."""
        nonlocal runs
        channel = _Channel()
        pid = _in_child(work, results_fd, channel, scratch, runs)
        runs += 1
        code, timed_out = _wait(pid, limit)
        text = channel.read(200)
        report = _read_report(os.path.join(scratch, f"run{runs - 1}", "report.json"))
        _kill_descendants()
        if not _wipe(places):
            return None
        if job.get("own_namespaces"):
            _remove_ipc(libc)
        return code, timed_out, text, report

    for fi, fn in enumerate(job["functions"]):
        passing = []
        for ai, text in enumerate(fn["asserts"]):
            token = os.urandom(16).hex()  # reported by the child only once the program finished
            ran = child(_assert_work(fn["prefix"] + "\n\n" + text + "\n", token,
                                     _seed(fn.get("key", ""), [text])), job["timeout"])
            if ran is None:
                return  # no verdict: the host fails this assert (KilledRunner), reruns the rest
            code, timed_out, error, _report = ran
            passed = code == 0 and not timed_out and error == token
            status = "Timeout" if timed_out else "OK" if passed else _status(error, code)
            emit({"f": fi, "a": ai, "exit": -1 if timed_out else code, "status": status})
            if passed:
                passing.append(text)
        passing = list(fn.get("passed", [])) + passing
        if coverage is not None and passing and fn.get("coverage", True):
            record = _coverage_record(child, fn, passing, coverage, template)
            if record is None:
                return  # no record: the host fails this coverage run
            emit({"f": fi, "coverage": record})
    emit({"done": True})


def _coverage_record(child, fn: dict, passing: list, coverage, template):
    """The coverage-and-types record of a function's passing asserts: one run of all of them
    after the function, as MultiPL-T did. Where that run fails (not by its time limit: an
    assert that changes what the others or the report need), each assert runs alone after the
    function in its own coverage child, within what is left of the function's limit, and their
    records are merged (`_merge_reports`; the asserts whose run failed count as `errors`). An
    error names the cause (`exit 70: TypeError: ...`). None: the runner must end."""
    import time

    limit = fn["coverage_timeout"]
    key = fn.get("key", "")
    ran = child(_coverage_work(fn["prefix"], passing, fn["entrypoint"], coverage, template,
                               _seed(key, passing)), limit)
    if ran is None:
        return None
    code, timed_out, cause, report = ran
    if code == 0 and not timed_out:
        try:
            return json.loads(report)
        except ValueError:
            cause = "no readable report"
    if timed_out:
        return {"error": "timeout"}
    error = f"exit {code}" + (f": {' '.join(cause.split())[:160]}" if cause.strip() else "")
    if len(passing) < 2:
        return {"error": error}
    deadline = time.monotonic() + limit
    reports, failed = [], 0
    for text in passing:
        left = deadline - time.monotonic()
        if left <= 0:
            failed += 1
            continue
        ran = child(_coverage_work(fn["prefix"], [text], fn["entrypoint"], coverage, template,
                                   _seed(key, [text])), left)
        if ran is None:
            return None
        code, timed_out, _cause, report = ran
        if code == 0 and not timed_out:
            reports.append(report)
        else:
            failed += 1
    merged = _merge_reports(reports, failed)
    if merged is None:
        return {"error": f"{error}; alone, each assert's coverage run failed too"}
    return merged
