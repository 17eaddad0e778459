"""How often `execute` rewrites a problem's results file (executor.SAVE_EVERY_S).

Each write rewrites the whole file (on S3 a GET and a PUT of it): one write per finished program
cost O(N^2) in a problem's N samples (43 s of the main thread's time for N = 1000). A problem's
file is written once its results are complete and, while it runs, once its oldest unwritten
result has waited SAVE_EVERY_S; the progress bar still moves per result, and an interruption
still writes every finished result, so the rerun runs only the rest and ends with the files of
an uninterrupted run."""

from __future__ import annotations

import _thread
import gzip
import json
import time

import pytest

from multiplt.execution import executor, files
from tests.support.threads import python_sigint
from tests.unit.execution.helpers import installed
from tests.unit.execution.test_interrupt_keeps_finished import _folder, saved_results

pytestmark = pytest.mark.skipif(not installed("lua"), reason="lua5.4 not installed")

#: a guard against a broken setup (a hang), never a timing the test depends on
GUARD_S = 120


def _one_by_one(monkeypatch, before_run=None):
    """Programs finish one at a time: each starts only once the main thread has taken in the
    previous one's result (executor._record), so that every batch the main thread sees is one
    result, whatever the machine's load. `before_run(sandbox, job, started)` runs first (started:
    how many programs had started before this one)."""
    real_record, real_run = executor._record, executor._run_job
    state = {"recorded": 0, "ended": 0, "started": 0}

    def record(batch, unwritten, statuses):
        error = real_record(batch, unwritten, statuses)
        state["recorded"] += len(batch)
        return error

    def run_job(sandbox, job, timeout):
        deadline = time.monotonic() + GUARD_S
        while state["recorded"] < state["ended"] and time.monotonic() < deadline:
            time.sleep(0.005)
        started, state["started"] = state["started"], state["started"] + 1
        if before_run is not None:
            before_run(sandbox, job, started)
        result = real_run(sandbox, job, timeout)
        state["ended"] += 1
        return result

    monkeypatch.setattr(executor, "_record", record)
    monkeypatch.setattr(executor, "_run_job", run_job)


def _count_writes(monkeypatch) -> dict[str, int]:
    """{results file name: how many times execute wrote it} (files.add_results calls)."""
    real, writes = files.add_results, {}

    def add_results(uri, *args, **kwargs):
        name = uri.rsplit("/", 1)[-1]
        writes[name] = writes.get(name, 0) + 1
        real(uri, *args, **kwargs)

    monkeypatch.setattr(files, "add_results", add_results)
    return writes


class _Bar:
    """A stand-in for the progress bar: the update steps it was given."""

    def __init__(self):
        self.updates: list[int] = []

    def update(self, n):
        self.updates.append(n)

    def close(self):
        pass


def _comparable(folder, names) -> dict:
    out = {}
    for name in names:
        with gzip.open(folder / f"{name}.results.json.gz", "rt") as f:
            doc = json.load(f)
        for r in doc["results"]:
            del r["timestamp"]
        out[name] = doc
    return out


PROBLEMS = {"P0": [f"print({i})\n" for i in range(12)],
            "P1": [f"print({i + 100})\n" for i in range(12)]}


@pytest.mark.timeout(300, method="thread")
def test_a_problem_is_written_once_not_per_finished_program(tmp_path, monkeypatch):
    """12 programs per problem finishing one by one, SAVE_EVERY_S far off: each results file is
    written once, when its problem is complete (before the fix: 12 times, once per program), and
    the progress bar still moves by one per finished program."""
    folder = _folder(tmp_path / "run", PROBLEMS)
    monkeypatch.setattr(executor, "SAVE_EVERY_S", 3600.0)
    _one_by_one(monkeypatch)
    writes = _count_writes(monkeypatch)
    bar = _Bar()
    monkeypatch.setattr(executor, "progress", lambda **kwargs: bar)
    summary = executor.execute(str(folder), workers=1, unsafe_no_sandbox=True)
    assert summary["statuses"] == {"OK": 24}
    assert writes == {"P0.results.json.gz": 1, "P1.results.json.gz": 1}
    assert bar.updates == [1] * 24
    for name, completions in PROBLEMS.items():
        saved = saved_results(folder, name)
        assert [saved[i]["stdout"] for i in range(len(completions))] == \
            [c[len("print("):-len(")\n")] + "\n" for c in completions]
        with gzip.open(folder / f"{name}.results.json.gz", "rt") as f:
            assert files.PENDING_KEY not in json.load(f)


@pytest.mark.timeout(300, method="thread")
def test_a_running_problems_results_are_written_every_save_every_s(tmp_path, monkeypatch):
    """A problem still running gets its finished results written once the oldest has waited
    SAVE_EVERY_S: the second program here runs only once the first one's result is in the file
    (without that write it would wait for ever: the problem cannot complete before it)."""
    folder = _folder(tmp_path / "run", {"P0": ["print(1)\n", "print(2)\n", "print(3)\n"]})
    monkeypatch.setattr(executor, "SAVE_EVERY_S", 0.3)
    seen = {}

    def wait_for_the_file(sandbox, job, started):
        if started == 1:
            deadline = time.monotonic() + GUARD_S
            while 0 not in saved_results(folder) and time.monotonic() < deadline:
                time.sleep(0.02)
            seen["on disk"] = saved_results(folder)

    _one_by_one(monkeypatch, wait_for_the_file)
    writes = _count_writes(monkeypatch)
    executor.execute(str(folder), workers=1, unsafe_no_sandbox=True)
    assert {i: r["stdout"] for i, r in seen["on disk"].items()} == {0: "1\n"}
    assert writes["P0.results.json.gz"] >= 2  # the one while it ran, the one once complete
    assert [saved_results(folder)[i]["stdout"] for i in range(3)] == ["1\n", "2\n", "3\n"]


@pytest.mark.timeout(300, method="thread")
def test_an_interrupt_writes_the_results_that_waited_and_the_rerun_completes_them(
        tmp_path, monkeypatch):
    """A Ctrl-C while results wait for their write (SAVE_EVERY_S far off, nothing written yet):
    the interrupted run writes every finished result (`_save_finished`), the rerun runs only
    the rest, and its files equal an uninterrupted run's."""
    problems = {"P0": [f"print({i})\n" for i in range(6)], "P1": ["print(100)\n", "print(101)\n"]}
    folder = _folder(tmp_path / "run", problems)
    monkeypatch.setattr(executor, "SAVE_EVERY_S", 3600.0)
    writes = _count_writes(monkeypatch)
    at_interrupt = {}

    def interrupt_at_the_fourth(sandbox, job, started):
        if started == 3:
            at_interrupt["writes"] = dict(writes)
            _thread.interrupt_main()
            sandbox.wait_closed(GUARD_S)  # it runs no more: SandboxClosed

    _one_by_one(monkeypatch, interrupt_at_the_fourth)
    with python_sigint():
        with pytest.raises(KeyboardInterrupt):
            executor.execute(str(folder), workers=1, unsafe_no_sandbox=True)
    monkeypatch.undo()
    assert at_interrupt["writes"] == {}, "results were written before the interrupt"
    saved = saved_results(folder)
    assert {i: r["stdout"] for i, r in saved.items()} == {0: "0\n", 1: "1\n", 2: "2\n"}
    assert saved_results(folder, "P1") == {}

    summary = executor.execute(str(folder), workers=1, unsafe_no_sandbox=True)
    assert summary["programs"]["dropped"]["done in an earlier run"] == 3
    assert summary["programs"]["kept"] == 5
    whole = _folder(tmp_path / "whole", problems)
    executor.execute(str(whole), workers=1, unsafe_no_sandbox=True)
    assert _comparable(folder, problems) == _comparable(whole, problems)
