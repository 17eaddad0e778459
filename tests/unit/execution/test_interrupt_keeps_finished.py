"""A Ctrl-C or SIGTERM that comes after programs have finished but before their problem's results
file is rewritten keeps those results: the interrupted `execute` writes every finished result
(in the usual format: the in-order prefix as `results`, the rest as `multiplt_pending`) before it
exits with its interrupted status, so the rerun runs only what had not finished, and the resumed
run's files equal an uninterrupted run's. Meanwhile `score` refuses the folder, as for any cut run.

The signal is raised for real (SIGINT under Python's own handler, SIGTERM under the command's),
at the one moment that matters: in the main thread, when it is about to write the results of a
batch of finished programs (the first, second or third call of `_Problem.write`: before a
batch's first problem is written, or after others were)."""

from __future__ import annotations

import gzip
import json
import signal
import time

import pytest

from multiplt import cli
from multiplt.evaluation import passk
from multiplt.execution import executor, files
from tests.support.threads import python_sigint
from tests.unit.execution.helpers import installed

pytestmark = pytest.mark.skipif(not installed("lua"), reason="lua5.4 not installed")

#: two problems; `print(1)` is in both (one job with two targets, across problems)
PROBLEMS = {
    "P0": ["print(1)\n", "print(2)\n", "error('no')\n", "print(4)\n"],
    "P1": ["print(3)\n", "print(1)\n", "os.exit(3)\n"],
}


def _folder(path, problems: dict[str, list[str]] = PROBLEMS):
    """A completions folder of Lua `problems` (name: completions) at `path`."""
    path.mkdir()
    for name, completions in problems.items():
        doc = {"name": name, "language": "lua", "prompt": "", "tests": "",
               "completions": completions, "stop_tokens": [], "temperature": 0.2, "top_p": 0.95,
               "max_tokens": 512}
        with gzip.open(path / f"{name}.json.gz", "wt") as f:
            json.dump(doc, f)
    return path


def saved_results(folder, name="P0") -> dict[int, dict]:
    """{completion index: result} of a results file, in order and pending; {} when absent."""
    path = folder / f"{name}.results.json.gz"
    if not path.exists():
        return {}
    with gzip.open(path, "rt") as f:
        doc = json.load(f)
    found = {int(i): r for i, r in doc.get(files.PENDING_KEY, {}).items()}
    found.update(enumerate(doc["results"]))
    return found


def _interrupt_at_write(monkeypatch, signum, nth: int) -> dict:
    """Raise `signum` in the main thread as it is about to write results for the `nth` time
    (once). The returned dict gets `finished`: every program whose run had ended by then
    ({program: its result}), and `asked`: the results of the problem that write was for.
    With one worker, each program starts only once the main thread has begun writing the
    previous one's results, so that every batch is one program whatever the machine's load
    (the writes go P0, P1 for `print(1)`, then P0, P0, ...), and every batch is written at once
    (SAVE_EVERY_S 0: test_save_every.py interrupts a run whose results wait for their write)."""
    real_write, real_run = executor._Problem.write, executor._run_job
    ended: dict[str, dict] = {}
    seen: dict = {}
    calls: list[str] = []
    last = {"calls": None}  # len(calls) when the previous program ended

    def run_job(sandbox, job, timeout):
        deadline = time.monotonic() + 120  # a guard against a broken setup, not a timing
        while last["calls"] is not None and len(calls) <= last["calls"] \
                and time.monotonic() < deadline:
            time.sleep(0.005)
        record = real_run(sandbox, job, timeout)
        ended[job.program] = record
        last["calls"] = len(calls)
        return record

    def write(self):
        calls.append(self.name)
        if len(calls) == nth:
            seen["finished"], seen["asked"] = dict(ended), list(self.results)
            signal.raise_signal(signum)  # the handler raises here, before anything is written
        real_write(self)

    monkeypatch.setattr(executor, "_run_job", run_job)
    monkeypatch.setattr(executor._Problem, "write", write)
    monkeypatch.setattr(executor, "SAVE_EVERY_S", 0)
    return seen


def _comparable(folder) -> dict:
    out = {}
    for name in PROBLEMS:
        with gzip.open(folder / f"{name}.results.json.gz", "rt") as f:
            doc = json.load(f)
        for r in doc["results"]:
            del r["timestamp"]
        out[name] = doc
    return out


def _check_saved_then_resume(tmp_path, folder, seen):
    assert any(r is not None for r in seen["asked"]), "the write was asked for no finished result"
    # every completion whose program had ended at the signal has that result on disk
    for name, completions in PROBLEMS.items():
        saved = saved_results(folder, name)
        for i, completion in enumerate(completions):
            record = seen["finished"].get(files.program({"prompt": "", "tests": ""}, completion))
            if record is not None:
                assert saved.get(i) == record, f"{name}[{i}]: a finished result was lost"
    total = sum(len(c) for c in PROBLEMS.values())
    kept = sum(len(saved_results(folder, n)) for n in PROBLEMS)
    assert kept < total, "the interrupt came too late to test anything"
    # score refuses the interrupted folder (its files say themselves that they are unfinished)
    assert passk.judge(str(folder), [1])[1], "score would take an unfinished folder"

    # the rerun runs only what was not saved, and ends with an uninterrupted run's files
    summary = executor.execute(str(folder), workers=1)
    assert summary["programs"]["dropped"]["done in an earlier run"] == kept
    whole = _folder(tmp_path / "whole")
    executor.execute(str(whole), workers=1)
    assert _comparable(folder) == _comparable(whole)
    assert passk.judge(str(folder), [1])[1] == []


@pytest.mark.timeout(300, method="thread")
@pytest.mark.parametrize("nth", [1, 2, 3])
def test_ctrl_c_before_a_batch_is_written_keeps_its_results(tmp_path, monkeypatch, nth):
    folder = _folder(tmp_path / "run")
    seen = _interrupt_at_write(monkeypatch, signal.SIGINT, nth)
    with python_sigint():
        with pytest.raises(KeyboardInterrupt):
            executor.execute(str(folder), workers=1)
    monkeypatch.undo()
    _check_saved_then_resume(tmp_path, folder, seen)


@pytest.mark.timeout(300, method="thread")
def test_sigterm_before_a_batch_is_written_keeps_its_results_and_exits_143(tmp_path, monkeypatch):
    folder = _folder(tmp_path / "run")
    seen = _interrupt_at_write(monkeypatch, signal.SIGTERM, 1)
    assert cli.main(["execute", "--in", str(folder), "--workers", "1"]) == 143
    monkeypatch.undo()
    _check_saved_then_resume(tmp_path, folder, seen)
