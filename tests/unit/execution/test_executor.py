"""The executor (issue 4, points 1-3): MultiPL-E files in and out, reruns, dedup, shards, bad
input, platform failures and the refusal to run unsandboxed. Programs are tiny Lua/Python ones
run for real in the sandbox."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys

import pytest

from multiplt import languages
from multiplt.errors import MultipltError, PlatformError
from multiplt.execution import executor, files, preflight, retry
from multiplt.execution.process import Finished
from multiplt.execution.sandbox import Sandbox
from multiplt.languages import lua
from multiplt.languages.lua import LuaLanguage
from tests.unit.execution.helpers import installed

pytestmark = pytest.mark.skipif(not installed("lua"), reason="lua5.4 not installed")

PROMPT = "local function add(x, y)\n"
TESTS = ("lu = require('luaunit')\nfunction test_humaneval()\nlocal candidate = add\n"
         "    lu.assertEquals(candidate(2, 3), 5)\nend\nos.exit(lu.LuaUnit.run())\n")
PREFLIGHT_PROGRAMS = {preflight.known_program(languages.get(c), good) for c in languages.names()
                      for good in (True, False)}
GOOD, BAD, SYNTAX = "    return x + y\nend\n", "    return x - y\nend\n", "    return x +\nend\n"


def write_problem(folder, name, completions, **extra):
    doc = {"name": name, "language": "lua", "prompt": PROMPT, "tests": TESTS,
           "completions": completions, "stop_tokens": ["\nlocal"], "temperature": 0.2,
           "top_p": 0.95, "max_tokens": 512, **extra}
    with gzip.open(folder / f"{name}.json.gz", "wt") as f:
        json.dump(doc, f)
    return doc


def read_results(folder, name):
    with gzip.open(folder / f"{name}.results.json.gz", "rt") as f:
        return json.load(f)


@pytest.fixture
def runs(monkeypatch):
    """Counts real sandbox runs by program."""
    calls = []
    real = Sandbox.run

    def spy(self, lang, program, timeout):
        if program not in PREFLIGHT_PROGRAMS:
            calls.append(program)
        return real(self, lang, program, timeout)

    monkeypatch.setattr(Sandbox, "run", spy)
    return calls


def test_results_file_is_multipl_e_compatible(tmp_path, runs):
    doc = write_problem(tmp_path, "P", [GOOD, BAD, SYNTAX])
    summary = executor.execute(str(tmp_path), workers=2)
    out = read_results(tmp_path, "P")
    assert {k: v for k, v in out.items() if k != "results"} == doc
    assert [r["status"] for r in out["results"]] == ["OK", "AssertionError", "SyntaxError"]
    for result, completion in zip(out["results"], doc["completions"]):
        assert set(result) == {"program", "stdout", "stderr", "exit_code", "status", "timestamp",
                               "timeout"}
        assert result["program"] == PROMPT + completion + "\n" + TESTS
        assert isinstance(result["timestamp"], int)
        assert result["timeout"] == LuaLanguage.timeout  # the limit it ran under
    assert [r["exit_code"] == 0 for r in out["results"]] == [True, False, False]
    assert summary["statuses"] == {"OK": 1, "AssertionError": 1, "SyntaxError": 1}
    assert files.PENDING_KEY not in out
    # nothing else was written: no side file ends in .json or .json.gz
    assert sorted(p.name for p in tmp_path.iterdir()) == ["P.json.gz", "P.results.json.gz"]


def test_identical_programs_run_once_and_rerun_does_only_missing(tmp_path, runs):
    write_problem(tmp_path, "A", [GOOD, BAD, GOOD])
    write_problem(tmp_path, "B", [GOOD])  # same program as A's first: one run for all three
    executor.execute(str(tmp_path), workers=2)
    assert sorted(runs) == sorted({PROMPT + c + "\n" + TESTS for c in (GOOD, BAD)})
    assert [r["status"] for r in read_results(tmp_path, "A")["results"]] == ["OK", "AssertionError", "OK"]
    assert read_results(tmp_path, "B")["results"][0]["status"] == "OK"

    runs.clear()
    executor.execute(str(tmp_path), workers=2)
    assert runs == []  # everything done already

    # Generation added a completion to A: only it runs; the earlier results are kept as they were.
    before = read_results(tmp_path, "A")["results"]
    write_problem(tmp_path, "A", [GOOD, BAD, GOOD, SYNTAX])
    executor.execute(str(tmp_path), workers=2)
    assert runs == [PROMPT + SYNTAX + "\n" + TESTS]
    after = read_results(tmp_path, "A")["results"]
    assert after[:3] == before and after[3]["status"] == "SyntaxError"


def test_pending_results_are_picked_up(tmp_path, runs):
    """A killed run can leave results that finished ahead of an earlier completion in the
    pending key; the rerun keeps them and runs only the gap."""
    doc = write_problem(tmp_path, "P", [GOOD, BAD, SYNTAX])
    executor.execute(str(tmp_path), workers=1)
    full = read_results(tmp_path, "P")["results"]
    partial = files.results_doc(doc, [full[0], None, full[2]])
    assert partial["results"] == [full[0]] and list(partial[files.PENDING_KEY]) == ["2"]
    with gzip.open(tmp_path / "P.results.json.gz", "wt") as f:
        json.dump(partial, f)
    runs.clear()
    executor.execute(str(tmp_path), workers=1)
    assert runs == [full[1]["program"]]
    out = read_results(tmp_path, "P")
    assert out["results"][0] == full[0] and out["results"][2] == full[2]
    assert files.PENDING_KEY not in out


def test_out_folder_and_empty_problems(tmp_path, runs):
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    write_problem(src, "P", [GOOD])
    write_problem(src, "Empty", [])
    listing = sorted(p.name for p in src.iterdir())
    executor.execute(str(src), out_uri=str(dst), workers=1)
    assert sorted(p.name for p in src.iterdir()) == listing  # the input is never touched
    assert sorted(p.name for p in dst.iterdir()) == ["P.results.json.gz"]  # none for Empty


def test_shards_partition_the_sorted_names(tmp_path):
    names = [f"HumanEval_{i}" for i in range(11)]
    shards = [files.select_shard(names, (k, 3)) for k in range(3)]
    assert sorted(sum(shards, [])) == sorted(names)
    assert shards[0] == sorted(names)[0::3]
    for bad in ("3/3", "-1/3", "1/0", "a/b", "1"):
        with pytest.raises(MultipltError, match="shard"):
            files.parse_shard(bad)


def test_shard_runs_only_its_problems(tmp_path, runs):
    for name in ("A", "B", "C"):
        write_problem(tmp_path, name, [GOOD])
    executor.execute(str(tmp_path), workers=1, shard="1/2")
    assert sorted(p.name for p in tmp_path.glob("*.results.json.gz")) == ["B.results.json.gz"]


@pytest.mark.parametrize("content,message", [
    (b"{not json", "is not valid JSON"),
    (json.dumps({"name": "Z_bad", "language": "lua", "prompt": "", "tests": ""}).encode(), "missing field 'completions'"),
    (json.dumps({"name": "Z_bad", "language": "cobol", "prompt": "", "tests": "", "completions": []}).encode(), "Z_bad.json.gz: unknown language"),
    (json.dumps({"name": "Z_bad", "language": "lua", "prompt": "", "tests": "", "completions": [1]}).encode(), "is not a string"),
    # results and score go by the file's name: a `name` that differs would leave its problem unscored
    (json.dumps({"name": "X", "language": "lua", "prompt": "", "tests": "", "completions": ["x"]}).encode(),
     "Z_bad.json.gz: field 'name' is 'X' but the file name says 'Z_bad'"),
])
def test_bad_input_fails_before_anything_runs(tmp_path, runs, content, message):
    write_problem(tmp_path, "A_good", [GOOD])
    (tmp_path / "Z_bad.json.gz").write_bytes(gzip.compress(content))
    with pytest.raises(MultipltError, match=message):
        executor.execute(str(tmp_path), workers=1)
    assert runs == [] and not list(tmp_path.glob("*.results.json.gz"))


@pytest.mark.parametrize("options,message", [({"workers": 0}, "--workers must be at least 1, got 0"),
                                             ({"timeout": 0}, "--timeout must be positive"),
                                             ({"timeout": float("nan")}, "--timeout must be positive and at most 86400 seconds \\(one day\\), got nan"),
                                             ({"timeout": float("inf")}, "--timeout must be positive .*, got inf"),
                                             ({"timeout": 1e20}, "--timeout must be positive .*, got 1e\\+20")])
def test_bad_options_fail_before_anything_runs(tmp_path, runs, options, message):
    write_problem(tmp_path, "A_good", [GOOD])
    with pytest.raises(MultipltError, match=message):
        executor.execute(str(tmp_path), **options)
    assert runs == [] and not list(tmp_path.glob("*.results.json.gz"))


def test_no_completion_files_is_an_error(tmp_path):
    with pytest.raises(MultipltError, match="no completion files"):
        executor.execute(str(tmp_path))


def test_a_missing_folder_or_a_file_is_named_as_such(tmp_path):
    for missing in (str(tmp_path / "nope"), f"file://{tmp_path}/nope"):
        with pytest.raises(MultipltError, match=f"^completions folder {missing} does not exist$"):
            executor.execute(missing)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(MultipltError, match="afile is a file, not a folder of completion files"):
        executor.execute(str(tmp_path / "afile"))
    assert executor.execute(str(tmp_path / "nope"), allow_empty=True)["programs"] == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_refuses_without_isolation_unless_unsafe(tmp_path, monkeypatch):
    write_problem(tmp_path, "P", [GOOD])
    tools = tmp_path / "bin"  # everything the executor may call, except bwrap
    tools.mkdir()
    for tool in ("prlimit", "setpriv", "lua5.4", "luac5.4"):
        os.symlink(shutil.which(tool), tools / tool)
    env = {**os.environ, "PATH": str(tools)}
    cli = [sys.executable, "-m", "multiplt", "execute", "--in", str(tmp_path)]
    refused = subprocess.run(cli, env=env, capture_output=True, text=True)
    assert refused.returncode == 3
    assert "bubblewrap (bwrap) is not installed" in refused.stderr
    assert "--unsafe-no-sandbox" in refused.stderr
    assert not (tmp_path / "P.results.json.gz").exists()
    # With the flag (and the runtimes on PATH) it runs, unsandboxed, and says so.
    ran = subprocess.run(cli + ["--unsafe-no-sandbox"], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert "WITHOUT a sandbox" in ran.stderr
    assert read_results(tmp_path, "P")["results"][0]["status"] == "OK"


@pytest.mark.parametrize("preload", [True, False], ids=["forked", "fresh"])
def test_preflight_catches_a_missing_test_library(preload):
    class BrokenLua(LuaLanguage):
        def env(self):
            return {"LUA_PATH": "/nonexistent/?.lua"}  # luaunit cannot be found

    if preload and not os.path.exists(os.path.join(lua.LUA_INCLUDE, "lua.h")):
        pytest.skip("no lua.h: Lua has no pre-loaded runtime here")
    # forked: the pre-loaded runtime, which loads luaunit first, cannot start
    expected = (r"(?s)pre-loaded runtime lua5.4 did not start: .*module 'luaunit' not found"
                if preload else "preflight for lua .* known-good program ended Exception")
    with pytest.raises(PlatformError, match=expected):
        preflight.preflight(Sandbox(preload=preload), [BrokenLua()])


def test_preflight_says_julia_is_missing():
    if installed("jl"):
        pytest.skip("julia is installed here")
    with pytest.raises(PlatformError, match=r"julia \(jl\) cannot run: julia not installed"):
        preflight.preflight(Sandbox(), [languages.get("jl")])


def test_platform_failures_are_retried_not_scored(tmp_path, monkeypatch):
    monkeypatch.setattr(retry, "BACKOFF_S", 0.01)
    real = Sandbox.run
    attempts = []

    def flaky(self, lang, program, timeout):
        if program in PREFLIGHT_PROGRAMS:
            return real(self, lang, program, timeout)
        attempts.append(program)
        if len(attempts) == 1 and program == PROMPT + GOOD + "\n" + TESTS:
            return Finished(1, "", "bwrap: Creating new namespace failed: Resource temporarily unavailable\n",
                            False, 0.01, {})
        return real(self, lang, program, timeout)

    monkeypatch.setattr(Sandbox, "run", flaky)
    write_problem(tmp_path, "P", [GOOD])
    executor.execute(str(tmp_path), workers=1)
    assert read_results(tmp_path, "P")["results"][0]["status"] == "OK"
    assert attempts.count(PROMPT + GOOD + "\n" + TESTS) == 2


def test_a_program_faking_a_platform_failure_is_scored(tmp_path, monkeypatch, runs):
    """bwrap's error text on every try, but the sandbox still works: the program wrote it."""
    monkeypatch.setattr(retry, "BACKOFF_S", 0.01)
    fake = "    return x + y\nend\nio.stderr:write('bwrap: pretend failure\\n'); os.exit(1)\n"
    write_problem(tmp_path, "P", [fake])
    executor.execute(str(tmp_path), workers=1)
    result = read_results(tmp_path, "P")["results"][0]
    assert result["status"] == "Exception" and result["exit_code"] == 1
    assert len(runs) == retry.RETRIES


def test_a_resumed_runs_summary_counts_its_own_statuses_and_the_shards_totals(tmp_path, runs):
    """`statuses`: what this run ran (a resumed run: only what was missing); `statuses_total`:
    every completion's result of the shard's problems, earlier runs' included, as one
    uninterrupted run's `statuses` would say."""
    write_problem(tmp_path, "A", [GOOD, BAD])
    first = executor.execute(str(tmp_path), workers=1)
    assert first["statuses"] == first["statuses_total"] == {"OK": 1, "AssertionError": 1}
    write_problem(tmp_path, "A", [GOOD, BAD, SYNTAX])  # generate added a sample
    write_problem(tmp_path, "B", [GOOD])               # identical to A's first: not run again
    resumed = executor.execute(str(tmp_path), workers=1)
    assert resumed["statuses"] == {"SyntaxError": 1}
    assert resumed["statuses_total"] == {"OK": 2, "AssertionError": 1, "SyntaxError": 1}
    assert executor.execute(str(tmp_path), workers=1)["statuses"] == {}  # nothing left to run


def test_earlier_results_of_an_identical_program_are_reused(tmp_path, runs):
    write_problem(tmp_path, "A", [GOOD, BAD])
    executor.execute(str(tmp_path), workers=1)
    runs.clear()
    write_problem(tmp_path, "B", [BAD, GOOD])  # new problem, same programs as A's
    summary = executor.execute(str(tmp_path), workers=1)
    assert runs == []
    assert [r["status"] for r in read_results(tmp_path, "B")["results"]] == ["AssertionError", "OK"]
    assert summary["programs"]["dropped"] == {"done in an earlier run": 2,
                                              "identical to another program": 2}


def test_a_completion_edited_into_another_ones_program_gets_that_result_on_disk(tmp_path, runs):
    """All of a problem's results known, one of them from an identical program: the file is
    rewritten, not left holding the edited completion's old program and status."""
    write_problem(tmp_path, "P", [BAD, GOOD])
    executor.execute(str(tmp_path), workers=1)
    runs.clear()
    write_problem(tmp_path, "P", [GOOD, GOOD])  # the first completion edited into the second
    executor.execute(str(tmp_path), workers=1)
    assert runs == []
    results = read_results(tmp_path, "P")["results"]
    assert [r["status"] for r in results] == ["OK", "OK"]
    assert results[0]["program"] == PROMPT + GOOD + "\n" + TESTS


SLOW = "    local t = os.clock()\n    while os.clock() - t < 1.5 do end\n    return x + y\nend\n"


def test_a_longer_timeout_runs_earlier_timeouts_again(tmp_path, runs):
    write_problem(tmp_path, "P", [SLOW, GOOD])
    executor.execute(str(tmp_path), workers=2, timeout=0.5)
    results = read_results(tmp_path, "P")["results"]
    assert [(r["status"], r["timeout"]) for r in results] == [("Timeout", 0.5), ("OK", 0.5)]
    slow = results[0]["program"]

    runs.clear()
    for timeout in (0.5, 0.3):  # no longer: the Timeout stands
        summary = executor.execute(str(tmp_path), workers=2, timeout=timeout)
        assert runs == [] and summary["rerun"] == {}
    assert read_results(tmp_path, "P")["results"] == results

    summary = executor.execute(str(tmp_path), workers=2)  # the language's 15 s: run again
    assert runs == [slow]
    assert summary["rerun"] == {executor.LONGER_LIMIT: 1} and summary["programs"]["kept"] == 1
    after = read_results(tmp_path, "P")["results"]
    assert [(r["status"], r["timeout"]) for r in after] == [("OK", 15.0), ("OK", 0.5)]
    assert after[1] == results[1]  # not a Timeout: kept as it was


def test_a_timeout_without_its_limit_ran_under_the_language_default(tmp_path, runs):
    """MultiPL-E's results (and ours before the field) do not say their limit: a Timeout is taken
    to have had the language's default, so only a longer --timeout runs it again."""
    doc = write_problem(tmp_path, "P", [SLOW])
    old = {"program": PROMPT + SLOW + "\n" + TESTS, "stdout": "", "stderr": "", "exit_code": -1,
           "status": "Timeout", "timestamp": 1}
    with gzip.open(tmp_path / "P.results.json.gz", "wt") as f:
        json.dump({**doc, "results": [old]}, f)
    for timeout in (None, LuaLanguage.timeout):
        summary = executor.execute(str(tmp_path), workers=1, timeout=timeout)
        assert runs == [] and summary["rerun"] == {}
    summary = executor.execute(str(tmp_path), workers=1, timeout=LuaLanguage.timeout + 1)
    assert runs == [old["program"]] and summary["rerun"] == {executor.LONGER_LIMIT: 1}
    assert read_results(tmp_path, "P")["results"][0]["status"] == "OK"


def _stalled_beside(monkeypatch, meanwhile):
    """Make this execute a stalled try: its retry writes the folder (`meanwhile()`) after this
    try has read it (before its programs run: the workers cannot write the folder), and its
    second program fails the run (the try is killed), so that one result is all it writes."""
    real_preflight, real_run, calls = executor.preflight, executor._run_job, []

    def stalled_preflight(*args):
        real_preflight(*args)
        meanwhile()

    def stalled(sandbox, job, timeout):
        calls.append(job)
        if len(calls) == 1:
            return real_run(sandbox, job, timeout)
        raise PlatformError("the stalled try is killed")

    monkeypatch.setattr(executor, "preflight", stalled_preflight)
    monkeypatch.setattr(executor, "_run_job", stalled)


def test_a_stalled_execute_never_cuts_back_its_retrys_results(tmp_path, monkeypatch):
    """A try that read the folder before its retry finished it writes only what the file lacks:
    the retry's results stay, so a finished folder stays finished (it cut them back to its own)."""
    write_problem(tmp_path, "P", [GOOD, BAD, SYNTAX])
    executor.execute(str(tmp_path), workers=1)
    finished = (tmp_path / "P.results.json.gz").read_bytes()
    (tmp_path / "P.results.json.gz").unlink()
    _stalled_beside(monkeypatch, lambda: (tmp_path / "P.results.json.gz").write_bytes(finished))
    with pytest.raises(PlatformError, match="killed"):
        executor.execute(str(tmp_path), workers=1)
    out = read_results(tmp_path, "P")
    assert [r["status"] for r in out["results"]] == ["OK", "AssertionError", "SyntaxError"]
    assert out["results"] == json.loads(gzip.decompress(finished))["results"]  # the retry's, kept
    assert files.PENDING_KEY not in out


def test_a_stalled_execute_keeps_results_of_samples_added_after_it_read(tmp_path, monkeypatch):
    """A generate added a sample after the stalled try read the problem, and the retry executed
    it: the try's write keeps the retry's longer file (the completions file still holds it)."""
    write_problem(tmp_path, "P", [GOOD, BAD])
    grown = tmp_path / "grown"
    grown.mkdir()
    write_problem(grown, "P", [GOOD, BAD, SYNTAX])
    executor.execute(str(grown), workers=1)

    def retry():
        for name in ("P.json.gz", "P.results.json.gz"):
            shutil.copy(grown / name, tmp_path / name)

    _stalled_beside(monkeypatch, retry)
    with pytest.raises(PlatformError, match="killed"):
        executor.execute(str(tmp_path), workers=1)
    out = read_results(tmp_path, "P")
    assert out["completions"] == [GOOD, BAD, SYNTAX]
    assert [r["status"] for r in out["results"]] == ["OK", "AssertionError", "SyntaxError"]


def test_results_of_completions_cut_after_execute_are_cut_too(tmp_path, runs):
    """The completions file lost samples after an execute (score refuses the folder): execute
    rewrites the results file to the completions there are, running nothing."""
    write_problem(tmp_path, "P", [GOOD, BAD, SYNTAX])
    executor.execute(str(tmp_path), workers=1)
    runs.clear()
    write_problem(tmp_path, "P", [GOOD, BAD])
    executor.execute(str(tmp_path), workers=1)
    out = read_results(tmp_path, "P")
    assert runs == [] and out["completions"] == [GOOD, BAD]
    assert [r["status"] for r in out["results"]] == ["OK", "AssertionError"]
