"""Results files only grow (files.add_results): each write merges into the file as it is then,
under the folder's lock (local) or as a conditional write (S3), so two executes of one folder
(a stalled Airflow try beside its retry) never cut back each other's results. No program runs
here: the results are made up."""

from __future__ import annotations

import gzip
import json
import logging
import re
import threading
import time

import pytest

from multiplt import storage
from multiplt.execution import files

DOC = {"name": "P", "language": "lua", "prompt": "local function f()\n", "tests": "\nos.exit(0)\n",
       "completions": [f"  return {i}\nend\n" for i in range(6)], "stop_tokens": [],
       "temperature": 0.2, "top_p": 0.95, "max_tokens": 64}


def result(i: int, status: str = "OK", by: str = "a", timeout: float = 15.0, doc: dict = DOC) -> dict:
    return {"program": files.program(doc, doc["completions"][i]), "stdout": by, "stderr": "",
            "exit_code": 0 if status == "OK" else 1, "status": status, "timestamp": 1,
            "timeout": timeout}


def never(old, new) -> bool:
    return False


@pytest.fixture(params=["local", "s3"])
def folder(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "run")
    return request.getfixturevalue("s3_bucket") + "/run"


def read(uri: str) -> dict:
    return json.loads(gzip.decompress(storage.read_bytes(uri)))


def test_a_stale_view_never_cuts_back_the_file(folder):
    uri = files.results_uri(folder, "P")
    files.add_results(uri, DOC, [result(i, by="retry") for i in range(6)], never, None)
    stale = [result(0, by="zombie"), result(1, by="zombie")] + [None] * 4
    files.add_results(uri, DOC, stale, never, None)
    out = read(uri)
    assert [r["stdout"] for r in out["results"]] == ["retry"] * 6  # the file's result stays
    assert files.PENDING_KEY not in out


def test_writers_of_other_indices_each_keep_theirs(folder):
    """Results finished by one writer ahead of a gap wait as pending; another's fill the gap."""
    uri = files.results_uri(folder, "P")
    files.add_results(uri, DOC, [None, None, None, result(3, by="b"), None, None], never, None)
    files.add_results(uri, DOC, [result(0), result(1), None, None, None, None], never, None)
    out = read(uri)
    assert [r["stdout"] for r in out["results"]] == ["a", "a"]
    assert {i: r["stdout"] for i, r in out[files.PENDING_KEY].items()} == {"3": "b"}
    files.add_results(uri, DOC, [None, None, result(2, by="b"), result(3, by="b"), result(4, by="b"),
                                 result(5, by="b")], never, None)
    assert [r["stdout"] for r in read(uri)["results"]] == ["a", "a", "b", "b", "b", "b"]


def test_a_superseding_result_replaces_the_files(folder):
    """A Timeout run again under a longer limit: the new result replaces it, the others stay."""
    uri = files.results_uri(folder, "P")
    files.add_results(uri, DOC, [result(i, "Timeout", timeout=1.0) for i in range(6)], never, None)
    longer = lambda old, new: old["status"] == "Timeout" and new["timeout"] > old["timeout"]  # noqa: E731
    files.add_results(uri, DOC, [result(0, timeout=15.0)] + [None] * 5, longer, None)
    assert [r["status"] for r in read(uri)["results"]] == ["OK"] + ["Timeout"] * 5


def test_a_result_of_another_program_is_dropped(tmp_path):
    """The file's result of a completion edited since is not the completion's."""
    uri = files.results_uri(str(tmp_path), "P")
    edited = {**DOC, "completions": ["  return 9\nend\n"] + DOC["completions"][1:]}
    files.add_results(uri, DOC, [result(i, by="old") for i in range(6)], never, None)
    files.add_results(uri, edited, [result(0, by="new", doc=edited)] + [None] * 5, never, None)
    assert [r["stdout"] for r in read(uri)["results"]] == ["new"] + ["old"] * 5


def test_threads_writing_at_once_lose_nothing(tmp_path):
    uri = files.results_uri(str(tmp_path), "P")

    def write(mine: list[int]) -> None:
        results = [None] * 6
        for i in mine:
            results[i] = result(i, by=str(i))
            files.add_results(uri, DOC, list(results), never, None)

    threads = [threading.Thread(target=write, args=(list(range(k, 6, 3)),)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r["stdout"] for r in read(uri)["results"]] == [str(i) for i in range(6)]


def test_s3_write_between_the_read_and_the_write_is_merged(s3_bucket, monkeypatch):
    """The conditional write fails when another writer wrote after the read: read and merge again."""
    uri = files.results_uri(s3_bucket + "/run", "P")
    files.add_results(uri, DOC, [result(0)] + [None] * 5, never, None)
    real, reads = storage.read_versioned, []

    def raced(u):
        got = real(u)
        reads.append(u)
        if len(reads) == 1:  # another execute writes its results now
            storage.write_bytes(uri, gzip.compress(json.dumps(
                files.results_doc(DOC, [result(i, by="other") for i in range(5)] + [None])).encode()))
        return got

    monkeypatch.setattr(storage, "read_versioned", raced)
    files.add_results(uri, DOC, [None] * 5 + [result(5)], never, None)
    assert len(reads) == 2
    assert [r["stdout"] for r in read(uri)["results"]] == ["other"] * 5 + ["a"]


def test_s3_without_conditional_writes_writes_plainly_and_warns_once(s3_bucket, monkeypatch, caplog):
    def unsupported(uri, data, etag):
        raise storage.ConditionalWriteUnsupported("the server does not support conditional writes")

    monkeypatch.setattr(storage, "write_bytes_if", unsupported)
    uri = files.results_uri(s3_bucket + "/run", "P")
    with caplog.at_level(logging.WARNING, logger="multiplt.execution"):
        files.add_results(uri, DOC, [result(0)] + [None] * 5, never, None)
        files.add_results(uri, DOC, [None, result(1)] + [None] * 4, never, None)
    assert [r["stdout"] for r in read(uri)["results"]] == ["a", "a"]
    warned = [r.getMessage() for r in caplog.records if "written without it" in r.getMessage()]
    assert warned == [f"{uri}: the server does not support conditional writes; written without "
                      f"it: two executes into {s3_bucket}/run at once may cut each other's results"]


def test_s3_file_that_keeps_changing_is_a_retryable_error_writing_nothing(s3_bucket, monkeypatch):
    """Every conditional write refused: PlatformError (exit 3) after WRITE_ATTEMPTS, the file as it was."""
    from multiplt.errors import PlatformError

    uri = files.results_uri(s3_bucket + "/run", "P")
    files.add_results(uri, DOC, [result(0)] + [None] * 5, never, None)
    before, tries = storage.read_bytes(uri), []
    monkeypatch.setattr(files, "WRITE_ATTEMPTS", 3)
    monkeypatch.setattr(time, "sleep", lambda s: None)
    monkeypatch.setattr(storage, "write_bytes_if", lambda u, data, etag: tries.append(etag) or False)
    with pytest.raises(PlatformError, match=rf"^{re.escape(uri)}: other writers changed the file on each of 3 "
                                            r"attempts to add results; run execute again later$"):
        files.add_results(uri, DOC, [None, result(1)] + [None] * 4, never, None)
    assert len(tries) == 3 and storage.read_bytes(uri) == before
