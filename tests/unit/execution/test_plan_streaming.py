"""`execute` plans a shard problem by problem while the workers run (executor._Plan), so that its
memory holds the programs queued and running rather than the whole shard's (1,640 problems x
200 completions planned at once came to about 1.4 GB). Planned so, a run still gives what one
plan of the whole shard gave: the same results files, funnels and summary, identical programs
run once across problems (also when the later problem is planned after the program ran), an
earlier result of a later problem reused by an earlier one, bad input refused before anything
runs, and an interrupted run's rerun ends with an uninterrupted run's files. The progress bar's
total is a bound from above until every problem is planned, and exact then.

The window is made tiny here (executor.PLAN_AHEAD, PLAN_PER_WORKER) so that a handful of
problems stream; `whole` sets it past the shard, which plans every problem before the first
program starts, as the executor did before."""

from __future__ import annotations

import _thread
import gzip
import json
import shutil
import weakref

import pytest

from multiplt.errors import MultipltError
from multiplt.execution import executor, files
from tests.support.threads import python_sigint
from tests.unit.execution.helpers import installed

pytestmark = pytest.mark.skipif(not installed("lua"), reason="lua5.4 not installed")

#: a guard against a broken setup (a hang), never a timing the test depends on
GUARD_S = 120
LOOP = "while true do end\n"


def _write_problem(folder, name, completions, prompt="", tests=""):
    doc = {"name": name, "language": "lua", "prompt": prompt, "tests": tests,
           "completions": completions, "stop_tokens": [], "temperature": 0.2, "top_p": 0.95,
           "max_tokens": 512}
    with gzip.open(folder / f"{name}.json.gz", "wt") as f:
        json.dump(doc, f)


def _folder(path, problems: dict[str, list[str]]):
    path.mkdir()
    for name, completions in problems.items():
        _write_problem(path, name, completions)
    return path


def _program(completion: str) -> str:
    return files.program({"prompt": "", "tests": ""}, completion)


def _window(monkeypatch, programs: int) -> None:
    """At most `programs` programs queued or running (with one worker) before the next problem
    is planned."""
    monkeypatch.setattr(executor, "PLAN_AHEAD", programs)
    monkeypatch.setattr(executor, "PLAN_PER_WORKER", 1)


def _results(folder) -> dict[str, dict]:
    """Every results file of the folder, as read (timestamps included)."""
    out = {}
    for path in sorted(folder.glob("*.results.json.gz")):
        with gzip.open(path, "rt") as f:
            out[path.name] = json.load(f)
    return out


def _without_timestamps(results: dict[str, dict]) -> dict[str, dict]:
    out = json.loads(json.dumps(results))
    for doc in out.values():
        for r in [*doc["results"], *doc.get(files.PENDING_KEY, {}).values()]:
            del r["timestamp"]
    return out


def _count_runs(monkeypatch) -> list[str]:
    """The programs execute runs (one entry per run), in order."""
    real, ran = executor._run_job, []

    def run_job(sandbox, job, timeout):
        ran.append(job.program)
        return real(sandbox, job, timeout)

    monkeypatch.setattr(executor, "_run_job", run_job)
    return ran


class _Bar:
    """A stand-in for the progress bar: its total at each update, and the steps."""

    def __init__(self, total):
        self.total, self.totals, self.updates, self.postfixes = total, [], [], []

    def update(self, n):
        self.totals.append(self.total)
        self.updates.append(n)

    def set_postfix(self, **kwargs):
        self.postfixes.append(kwargs)

    def close(self):
        pass


@pytest.mark.timeout(300, method="thread")
def test_problems_are_planned_while_the_first_ones_run_and_let_go_once_written(tmp_path,
                                                                                  monkeypatch):
    """Eight problems of three programs each, one worker, a window of one program: the first
    problem's file is written before the last problem is planned (its programs built), and at
    no time do more than two problems hold their programs in memory. Planning the whole shard
    first (before the fix) built all eight before the first program ran, and kept them all."""
    problems = {f"P{k}": [f"print({3 * k + i})\n" for i in range(3)] for k in range(8)}
    folder = _folder(tmp_path / "run", problems)
    _window(monkeypatch, 1)
    events: list[str] = []
    live: weakref.WeakSet = weakref.WeakSet()
    most = {"problems": 0}

    class Tracked(executor._Problem):
        __hash__ = object.__hash__  # by identity, to be held in the WeakSet

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            events.append(f"planned {self.name}")
            live.add(self)

        def write(self):
            super().write()
            events.append(f"wrote {self.name}")

    real_run = executor._run_job

    def run_job(sandbox, job, timeout):
        most["problems"] = max(most["problems"], len(live))
        return real_run(sandbox, job, timeout)

    monkeypatch.setattr(executor, "_Problem", Tracked)
    monkeypatch.setattr(executor, "_run_job", run_job)
    summary = executor.execute(str(folder), workers=1, unsafe_no_sandbox=True)

    assert summary["statuses"] == {"OK": 24}
    assert events.index("wrote P0") < events.index("planned P7"), events
    assert most["problems"] <= 2, f"{most['problems']} problems held their programs at once"
    for name, completions in problems.items():
        doc = _results(folder)[f"{name}.results.json.gz"]
        assert [r["stdout"] for r in doc["results"]] == [c[6:-2] + "\n" for c in completions]


@pytest.mark.timeout(300, method="thread")
def test_a_program_problems_share_is_let_go_once_the_last_of_them_is_planned(tmp_path,
                                                                             monkeypatch):
    """Each problem shares a program with the next (P1 holds P0's print(1), and so on): a
    shared program's job (its program, its result) is kept for the problems planned later that
    hold it, and let go once the last of them is planned, so at most a few jobs are alive at
    once, not one per shared program of the shard."""
    problems = {f"P{k}": [f"print({k})\n", f"print({k + 1})\n"] for k in range(8)}
    folder = _folder(tmp_path / "run", problems)
    _window(monkeypatch, 1)
    live: weakref.WeakSet = weakref.WeakSet()
    most = {"jobs": 0}

    class Tracked(executor._Job):
        __hash__ = object.__hash__  # by identity, to be held in the WeakSet

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            live.add(self)

    real_run = executor._run_job

    def run_job(sandbox, job, timeout):
        most["jobs"] = max(most["jobs"], len(live))
        return real_run(sandbox, job, timeout)

    monkeypatch.setattr(executor, "_Job", Tracked)
    monkeypatch.setattr(executor, "_run_job", run_job)
    summary = executor.execute(str(folder), workers=1, unsafe_no_sandbox=True)
    assert summary["programs"] == {"stage": "execute programs", "in": 16, "kept": 9,
                                   "dropped": {"identical to another program": 7}}
    assert most["jobs"] <= 3, f"{most['jobs']} jobs were alive at once"
    results = _results(folder)
    for k in range(7):  # the result of the one run, timestamp and all
        assert results[f"P{k + 1}.results.json.gz"]["results"][0] == \
            results[f"P{k}.results.json.gz"]["results"][1]


#: problems sharing a program far apart in the shard (A0's print(1) is A6's too), duplicates
#: inside a problem, and a problem without completions
SHARD = {
    "A0": ["print(1)\n", "print(2)\n", "print(1)\n"],
    "A1": ["print(3)\n", "io.stderr:write('no') os.exit(1)\n"],
    "A2": [],
    "A3": ["print(4)\n", "print(4)\n", "os.exit(3)\n"],
    "A4": ["print(5)\n"],
    "A5": ["print(6)\n", "print(7)\n"],
    "A6": ["print(8)\n", "print(1)\n"],
    "A7": ["print(9)\n", "print(10)\n"],
}


def _two_runs(tmp_path, monkeypatch, prepare, **options):
    """The same folder (made by `prepare(folder)`) executed streamed (a window of one program)
    and whole: (summary, results, programs run) of each."""
    out = []
    for name, window in (("streamed", 1), ("whole", 10 ** 9)):
        folder = tmp_path / name
        folder.mkdir()
        prepare(folder)
        with monkeypatch.context() as patch:
            _window(patch, window)
            ran = _count_runs(patch)
            summary = executor.execute(str(folder), workers=1, unsafe_no_sandbox=True, **options)
        out.append((summary, _results(folder), ran))
    return out


@pytest.mark.timeout(300, method="thread")
def test_a_streamed_run_gives_the_whole_shards_results_funnels_and_summary(tmp_path,
                                                                             monkeypatch):
    """A fresh run: the same files (bar timestamps), the same summary; every distinct program
    runs once, A6's print(1) (planned long after A0's ran) gets that very result, timestamp and
    all."""
    def prepare(folder):
        for name, completions in SHARD.items():
            _write_problem(folder, name, completions)

    (streamed, s_files, s_ran), (whole, w_files, w_ran) = _two_runs(tmp_path, monkeypatch,
                                                                   prepare)
    assert streamed == whole
    assert _without_timestamps(s_files) == _without_timestamps(w_files)
    every = {_program(c) for cs in SHARD.values() for c in cs}
    assert sorted(s_ran) == sorted(w_ran) == sorted(every)
    a0, a6 = s_files["A0.results.json.gz"]["results"], s_files["A6.results.json.gz"]["results"]
    assert a6[1] == a0[0]
    assert streamed["programs"]["dropped"] == {"identical to another program": 3}
    assert streamed["problems"]["dropped"] == {"no completions": 1}


@pytest.mark.timeout(300, method="thread")
def test_a_streamed_rerun_reuses_what_the_whole_shards_plan_reused(tmp_path, monkeypatch):
    """A rerun over earlier results: a Timeout under a shorter limit run again, a pending result
    kept, a finished problem left alone, a completion edited into another's program taking its
    result, and a program that only the shard's last problem ran before reused by the first
    (its earlier result is gathered before any problem is planned): the same files, summary
    and programs run, streamed or whole."""
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    shard = {**SHARD, "A7": ["print(9)\n", LOOP]}
    for name, completions in shard.items():
        _write_problem(earlier, name, completions)
    executor.execute(str(earlier), workers=1, unsafe_no_sandbox=True, timeout=0.2)
    loop = _results(earlier)["A7.results.json.gz"]["results"][1]
    assert loop["status"] == "Timeout" and loop["timeout"] == 0.2
    # A5's file: only its second result, pending (a run killed before its first finished)
    with gzip.open(earlier / "A5.results.json.gz", "rt") as f:
        doc = json.load(f)
    with gzip.open(earlier / "A5.results.json.gz", "wt") as f:
        json.dump(files.results_doc(doc, [None, doc["results"][1]]), f)

    def prepare(folder):
        shutil.copytree(earlier, folder, dirs_exist_ok=True)
        _write_problem(folder, "A0", [*shard["A0"], "print(9)\n"])  # A7's, ran before
        _write_problem(folder, "A3", ["print(3)\n", "print(4)\n", "os.exit(3)\n"])  # A1's first
        _write_problem(folder, "A8", ["print(11)\n", "print(6)\n"])  # a new problem

    (streamed, s_files, s_ran), (whole, w_files, w_ran) = _two_runs(tmp_path, monkeypatch, prepare,
                                                                   timeout=0.4)
    assert streamed == whole
    assert _without_timestamps(s_files) == _without_timestamps(w_files)
    assert sorted(s_ran) == sorted(w_ran) == sorted(map(_program, [LOOP, "print(6)\n",
                                                                   "print(11)\n"]))
    assert streamed["rerun"] == {executor.LONGER_LIMIT: 1}
    a0 = s_files["A0.results.json.gz"]["results"][3]
    assert a0 == _results(earlier)["A7.results.json.gz"]["results"][0]  # reused, not run


@pytest.mark.timeout(300, method="thread")
def test_the_bars_total_is_a_bound_until_every_problem_is_planned_then_exact(tmp_path,
                                                                                monkeypatch):
    """Half the shard done already: the total starts as every distinct program, says so beside
    the bar while problems remain to plan, comes down as planning finds results, and ends at
    the programs run; it never falls below them."""
    problems = {f"P{k}": [f"print({2 * k})\n", f"print({2 * k + 1})\n"] for k in range(6)}
    folder = _folder(tmp_path / "run", {n: c for n, c in problems.items() if n in ("P1", "P3")})
    executor.execute(str(folder), workers=1, unsafe_no_sandbox=True)
    for name, completions in problems.items():
        _write_problem(folder, name, completions)
    _window(monkeypatch, 1)
    bars = []
    monkeypatch.setattr(executor, "progress",
                        lambda **kwargs: bars.append(_Bar(kwargs["total"])) or bars[-1])
    summary = executor.execute(str(folder), workers=1, unsafe_no_sandbox=True)
    [bar] = bars
    ran = summary["programs"]["kept"]
    assert ran == 8 and summary["programs"]["dropped"] == {"done in an earlier run": 4}
    assert sum(bar.updates) == ran and bar.total == ran
    assert bar.totals[0] == 12  # every distinct program, until P1 is found done
    assert all(t >= ran for t in bar.totals) and bar.totals == sorted(bar.totals, reverse=True)
    assert bar.totals[-1] == ran
    assert bar.postfixes[0] == {"planned": "1/6 problems (total: at most)"}
    assert bar.postfixes[-1] == {}  # every problem planned: the total is exact, no more said


@pytest.mark.timeout(300, method="thread")
def test_bad_input_at_the_end_of_a_long_shard_fails_before_anything_runs(tmp_path, monkeypatch):
    folder = _folder(tmp_path / "run", {f"A{k}": [f"print({k})\n"] for k in range(5)})
    bad = {"name": "Z_bad", "language": "cobol", "prompt": "", "tests": "", "completions": []}
    (folder / "Z_bad.json.gz").write_bytes(gzip.compress(json.dumps(bad).encode()))
    _window(monkeypatch, 1)
    ran = _count_runs(monkeypatch)
    with pytest.raises(MultipltError, match="Z_bad.json.gz: unknown language"):
        executor.execute(str(folder), workers=1, unsafe_no_sandbox=True)
    assert ran == [] and not list(folder.glob("*.results.json.gz"))


@pytest.mark.timeout(300, method="thread")
def test_a_streamed_run_interrupted_keeps_what_finished_and_the_rerun_completes_it(tmp_path,
                                                                                      monkeypatch):
    """A Ctrl-C at the fifth program, with later problems not planned yet: the finished results
    are written, the rerun runs only the rest, and ends with an uninterrupted run's files."""
    folder = _folder(tmp_path / "run", SHARD)
    _window(monkeypatch, 1)
    real_run, ran = executor._run_job, []

    def run_job(sandbox, job, timeout):
        if len(ran) == 4:
            _thread.interrupt_main()
            sandbox.wait_closed(GUARD_S)  # it runs no more: SandboxClosed
        ran.append(job.program)
        return real_run(sandbox, job, timeout)

    monkeypatch.setattr(executor, "_run_job", run_job)
    with python_sigint():
        with pytest.raises(KeyboardInterrupt):
            executor.execute(str(folder), workers=1, unsafe_no_sandbox=True)
    monkeypatch.undo()
    # the first four programs: A0's (print(1) twice) and A1's; A3's first was killed, and the
    # problems after it were not planned yet
    done = {name: doc["results"] for name, doc in _results(folder).items()}
    assert {name: len(r) for name, r in done.items()} == {"A0.results.json.gz": 3,
                                                          "A1.results.json.gz": 2}

    _window(monkeypatch, 1)
    rerun = executor.execute(str(folder), workers=1, unsafe_no_sandbox=True)
    kept = sum(len(r) for r in done.values())
    assert rerun["programs"]["dropped"]["done in an earlier run"] == kept
    whole = _folder(tmp_path / "whole", SHARD)
    executor.execute(str(whole), workers=1, unsafe_no_sandbox=True)
    assert _without_timestamps(_results(folder)) == _without_timestamps(_results(whole))
