"""The last writes of an interrupted or failing `execute` (`_save_finished`: the finished results
not yet in their files) take SAVE_LOCK_WAIT_S in all, whatever they wait for, and stop at the
first that fails, with one warning saying how many problems' results were left unwritten.

Before, the deadline bounded only the local folder's lock: on an S3 endpoint that stalled, each
problem's write waited botocore's timeouts (60 s per read, 6 attempts) in turn, so a SIGTERM
ended `execute --out s3://...` only after hours; on one that refused connections, or a local
folder whose lock stayed taken, it printed one warning per problem before the error.

A test here that hangs (pytest's timeout) is the bug: no assertion on how long a save took."""

from __future__ import annotations

import gzip
import json
import logging

import pytest

from multiplt import languages, storage
from multiplt.execution import executor
from tests.support.stalled_s3 import use_endpoint
from tests.unit.execution.helpers import installed

needs_lua = pytest.mark.skipif(not installed("lua"), reason="lua5.4 not installed")


def _problems(out: str, count: int) -> dict[int, executor._Problem]:
    """`count` problems of one completion each, finished, none written yet (as _run's
    `unwritten` holds them), with results files in `out`."""
    lua = languages.get("lua")
    unwritten = {}
    for i in range(count):
        doc = {"name": f"P{i}", "language": "lua", "prompt": "", "tests": "",
               "completions": [f"print({i})\n"]}
        result = {"program": f"print({i})\n\n", "stdout": f"{i}\n", "stderr": "", "exit_code": 0,
                  "status": "OK", "timestamp": 0, "timeout": lua.timeout}
        problem = executor._Problem(f"P{i}", storage.join(out, f"P{i}.results.json.gz"), doc,
                                    [result], lua, source=None)
        unwritten[id(problem)] = problem
    return unwritten


def _warnings(caplog) -> list[str]:
    """The run's warnings (but the one that it runs unsandboxed)."""
    return [r.getMessage() for r in caplog.records
            if r.name == "multiplt.execution" and r.levelno >= logging.WARNING
            and "WITHOUT a sandbox" not in r.getMessage()]


@pytest.mark.timeout(60)
def test_a_save_on_an_endpoint_that_never_answers_ends_at_its_deadline(silent_endpoint, monkeypatch,
                                                                       caplog):
    # each call would wait 30 s: only the save's own deadline ends it sooner
    use_endpoint(monkeypatch, silent_endpoint.url, MULTIPLT_S3_READ_TIMEOUT="30")
    monkeypatch.setattr(executor, "SAVE_LOCK_WAIT_S", 0.5)
    with caplog.at_level(logging.INFO, logger="multiplt.execution"):
        executor._save_finished([], 0, _problems("s3://bucket/out", 4))
    assert _warnings(caplog) == [
        "execute: the finished results of 4 problem(s) were left unwritten (the rerun runs them "
        "again): could not write those of problem P0: the write did not end within 0.5 s (its folder "
        "stayed locked, or the storage did not answer)"]
    assert "writing the finished results of 4 problem(s)" in caplog.text


@pytest.mark.timeout(60)
def test_a_save_on_an_endpoint_that_refuses_stops_at_the_first_failure(refused_endpoint, monkeypatch,
                                                                       caplog):
    use_endpoint(monkeypatch, refused_endpoint)
    with caplog.at_level(logging.WARNING, logger="multiplt.execution"):
        executor._save_finished([], 0, _problems("s3://bucket/out", 4))
    [line] = _warnings(caplog)
    assert line.startswith("execute: the finished results of 4 problem(s) were left unwritten (the "
                           "rerun runs them again): could not write those of problem P0: cannot "
                           "reach the S3 endpoint")


@pytest.mark.timeout(60)
def test_a_save_into_a_folder_that_stays_locked_says_so_once(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(executor, "SAVE_LOCK_WAIT_S", 0.2)
    with storage.FolderLock(str(tmp_path)):  # another execute of the folder, writing
        with caplog.at_level(logging.WARNING, logger="multiplt.execution"):
            executor._save_finished([], 0, _problems(str(tmp_path), 3))
    [line] = _warnings(caplog)
    assert line.startswith("execute: the finished results of 3 problem(s) were left unwritten")
    assert "folder stayed locked" in line
    assert not list(tmp_path.glob("*.results.json.gz"))


def test_a_save_writes_every_problem_when_it_can(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="multiplt.execution"):
        executor._save_finished([], 0, _problems(str(tmp_path), 3))
    assert _warnings(caplog) == []
    for i in range(3):
        assert storage.read_json(str(tmp_path / f"P{i}.results.json.gz"))["results"][0]["stdout"] == f"{i}\n"


@pytest.mark.timeout(120)
@needs_lua
def test_an_execute_interrupted_while_its_store_stalls_ends_with_one_line(
        tmp_path, s3_bucket, silent_endpoint, monkeypatch, caplog):
    """`execute --out s3://...`, the store stalling from the first write on, then a Ctrl-C: the
    run ends with its interruption once the save's deadline has passed, one warning said."""
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        doc = {"name": f"P{i}", "language": "lua", "prompt": "", "tests": "",
               "completions": [f"print({i})\n", f"print({i + 10})\n"], "stop_tokens": []}
        with gzip.open(folder / f"P{i}.json.gz", "wt") as f:
            json.dump(doc, f)
    monkeypatch.setattr(executor, "SAVE_LOCK_WAIT_S", 0.5)
    real_write, calls = executor._Problem.write, []

    def write(self):
        if not calls:  # the store stalls now, and the Ctrl-C comes as the run waits on it
            calls.append(self.name)
            use_endpoint(monkeypatch, silent_endpoint.url, MULTIPLT_S3_READ_TIMEOUT="30")
            raise KeyboardInterrupt
        real_write(self)

    monkeypatch.setattr(executor._Problem, "write", write)
    out = storage.join(s3_bucket, "out")
    with caplog.at_level(logging.INFO, logger="multiplt.execution"):
        with pytest.raises(KeyboardInterrupt):
            executor.execute(str(folder), out, workers=1, unsafe_no_sandbox=True)
    assert calls
    [line] = _warnings(caplog)
    assert "problem(s) were left unwritten (the rerun runs them again)" in line
    assert "the storage did not answer" in line
