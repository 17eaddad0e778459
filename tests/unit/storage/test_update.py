"""storage.update: the read-merge-write with compare-and-swap that execute's results files,
generate's problem files and the results store share. Local files and S3 (moto's server):
another writer's change between the read and the write makes the write fail and the merge run
again on the new bytes; a file that keeps changing ends in PlatformError(gave_up) after
`attempts` tries with a bounded backoff between them; `confirm` and `unsupported` hooks."""

from __future__ import annotations

import logging

import pytest

from multiplt import storage
from multiplt.errors import PlatformError
from tests.support.threads import run_at_once


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "store")
    return request.getfixturevalue("s3_bucket")


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """The waits update asks for, recorded instead of slept."""
    waited: list[float] = []
    monkeypatch.setattr(storage.time, "sleep", waited.append)
    return waited


def add(n: int):
    """A merge that adds `n` to the decimal counter stored (0 when absent), recording its input."""
    seen: list[bytes | None] = []

    def merge(data: bytes | None) -> bytes:
        seen.append(data)
        return str(int(data or b"0") + n).encode()

    merge.seen = seen
    return merge


def test_creates_then_merges_into_what_is_there(root):
    uri = f"{root}/sub/counter"
    first = add(2)
    assert storage.update(uri, first, gave_up="gave up") == b"2"
    assert first.seen == [None]  # nothing there yet
    then = add(3)
    assert storage.update(uri, then, gave_up="gave up") == b"5"
    assert then.seen == [b"2"]
    assert storage.read_bytes(uri) == b"5"
    assert storage.ls(f"{root}/sub") == [f"{root}/sub/counter"]  # no temp file left behind


def test_nothing_to_write_writes_nothing(root):
    uri = f"{root}/kept"
    assert storage.update(uri, lambda data: None, gave_up="gave up") is None
    assert not storage.exists(uri)
    storage.write_bytes(uri, b"7")
    _, etag = storage.read_versioned(uri)
    assert storage.update(uri, lambda data: None, gave_up="gave up") is None
    assert storage.read_versioned(uri) == (b"7", etag)  # not even rewritten


@pytest.mark.parametrize("before", [b"10", None], ids=["changed", "created"])
def test_a_write_between_the_read_and_the_write_is_merged_again(root, sleeps, caplog, before):
    """Another writer changes (or creates) the object after update read it: the conditional
    write is refused, and the merge runs again on the other writer's bytes."""
    uri = f"{root}/counter"
    if before is not None:
        storage.write_bytes(uri, before)
    seen: list[bytes | None] = []

    def merge(data: bytes | None) -> bytes:
        seen.append(data)
        if len(seen) == 1:  # the other writer, right after this read
            storage.write_bytes(uri, b"100")
        return str(int(data or b"0") + 1).encode()

    log = logging.getLogger("tests.update")
    with caplog.at_level(logging.INFO, logger="tests.update"):
        assert storage.update(uri, merge, gave_up="gave up", log=log) == b"101"
    assert seen == [before, b"100"]
    assert storage.read_bytes(uri) == b"101"  # the other writer's change is not lost
    assert len(sleeps) == 1
    assert f"{uri} changed since it was read (attempt 1 of {storage.UPDATE_ATTEMPTS})" in caplog.text


def test_an_object_deleted_between_the_read_and_the_write_is_merged_again(root, sleeps):
    uri = f"{root}/counter"
    storage.write_bytes(uri, b"5")
    seen: list[bytes | None] = []

    def merge(data: bytes | None) -> bytes:
        seen.append(data)
        if len(seen) == 1:
            storage.delete(uri)
        return str(int(data or b"0") + 1).encode()

    assert storage.update(uri, merge, gave_up="gave up") == b"1"
    assert seen == [b"5", None]


def test_a_file_that_keeps_changing_is_the_callers_error_after_the_attempts(root, sleeps):
    uri = f"{root}/busy"
    storage.write_bytes(uri, b"0")
    calls: list[bytes | None] = []

    def merge(data: bytes | None) -> bytes:
        calls.append(data)
        storage.write_bytes(uri, b"other %d" % len(calls))  # another writer, every time
        return b"mine"

    with pytest.raises(PlatformError, match=r"^busy: retry later$"):
        storage.update(uri, merge, gave_up="busy: retry later", attempts=4, backoff_s=0.5, backoff_max_s=1.5)
    assert calls == [b"0", b"other 1", b"other 2", b"other 3"]  # each attempt read afresh
    assert storage.read_bytes(uri) == b"other 4"  # never overwritten
    # a wait between attempts, none after the last: up to backoff_s doubled each time, capped
    assert len(sleeps) == 3
    assert all(0 <= wait <= cap for wait, cap in zip(sleeps, [0.5, 1.0, 1.5]))


def test_the_default_attempts(root, sleeps, monkeypatch):
    tries: list[str | None] = []
    monkeypatch.setattr(storage, "write_bytes_if", lambda uri, data, etag: tries.append(etag) or False)
    with pytest.raises(PlatformError, match="gave up"):
        storage.update(f"{root}/x", lambda data: b"x", gave_up="gave up")
    assert len(tries) == storage.UPDATE_ATTEMPTS and len(sleeps) == storage.UPDATE_ATTEMPTS - 1
    assert all(wait <= storage.UPDATE_BACKOFF_MAX_S for wait in sleeps)


def test_confirm_false_counts_as_a_lost_race(root, sleeps):
    uri = f"{root}/checked"
    answers = [False, True]
    merges = add(1)
    assert storage.update(uri, merges, gave_up="gave up", confirm=lambda: answers.pop(0)) == b"2"
    assert merges.seen == [None, b"1"]  # merged again on what the first write left
    assert answers == [] and len(sleeps) == 1
    with pytest.raises(PlatformError, match="never stays"):
        storage.update(uri, add(1), gave_up="never stays", attempts=3, confirm=lambda: False)


def test_a_server_without_conditional_writes_gets_a_plain_write_warned_once(root, monkeypatch,
                                                                            caplog):
    """With `unsupported` (what writers at once may then do), the merged bytes are written
    plainly, with a warning naming the file and the text, once per text (a caller names its
    folder in it); without it the exception is the caller's to handle."""
    uri, other = f"{root}/plain", f"{root}/other"

    def not_implemented(u, data, etag):
        raise storage.ConditionalWriteUnsupported(f"the server refused a conditional write to {u}")

    monkeypatch.setattr(storage, "write_bytes_if", not_implemented)
    with pytest.raises(storage.ConditionalWriteUnsupported):  # no fallback: the caller's to handle
        storage.update(uri, add(4), gave_up="gave up")
    assert not storage.exists(uri)
    text = f"two writers into {root} at once may lose a count"
    with caplog.at_level(logging.WARNING, logger="multiplt.storage"):
        assert storage.update(uri, add(4), gave_up="gave up", unsupported=text) == b"4"
        assert storage.update(uri, add(1), gave_up="gave up", unsupported=text) == b"5"
        assert storage.update(other, add(2), gave_up="gave up", unsupported=text) == b"2"
        assert storage.update(uri, lambda data: None, gave_up="gave up", unsupported=text) is None
    assert (storage.read_bytes(uri), storage.read_bytes(other)) == (b"5", b"2")
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warned == [f"{uri}: the server refused a conditional write to {uri}; written without "
                      f"it: {text}"]


def test_at_least_one_attempt(root):
    with pytest.raises(ValueError, match="at least 1 attempt"):
        storage.update(f"{root}/x", add(1), gave_up="gave up", attempts=0)


def test_writers_at_once_each_apply_their_change(root):
    """update from several threads at once: no increment is lost."""
    uri = f"{root}/counter"
    threads, per_thread = 4, 5

    def add_one_each_time() -> None:
        for _ in range(per_thread):
            storage.update(uri, add(1), gave_up="gave up", attempts=1000, backoff_s=0.001, backoff_max_s=0.01)

    run_at_once(add_one_each_time, threads)
    assert storage.read_bytes(uri) == str(threads * per_thread).encode()
