"""Compare-and-swap writes (`storage.read_versioned` + `storage.write_bytes_if`) on local files
and on S3 (conditional PUT against the moto server): written only on the version read, or only
when absent; a stale version, a file created or deleted meanwhile is False and writes nothing;
S3's refusals map to False (412, 409, 404) or ConditionalWriteUnsupported (501)."""

from __future__ import annotations

import pytest

from multiplt import storage
from multiplt.errors import MultipltError
from tests.support.threads import run_at_once


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "store")
    return request.getfixturevalue("s3_bucket")


def test_write_only_on_the_version_read(root):
    uri = f"{root}/sub/table.bin"
    with pytest.raises(storage.NotFound):
        storage.read_versioned(uri)
    assert storage.write_bytes_if(uri, b"one", None)
    assert not storage.write_bytes_if(uri, b"two", None)  # it exists now
    data, etag = storage.read_versioned(uri)
    assert data == b"one"
    [info] = storage.listing(f"{root}/sub")
    assert info.etag == etag  # the version tag listings give
    assert storage.write_bytes_if(uri, b"three", etag)
    assert not storage.write_bytes_if(uri, b"four", etag)  # stale: another write came between
    data, newer = storage.read_versioned(uri)
    assert data == b"three" and newer != etag
    storage.delete(uri)
    assert not storage.write_bytes_if(uri, b"five", newer)  # deleted since it was read
    assert not storage.exists(uri)
    assert storage.ls(f"{root}/sub") == []  # no temp file left behind


def test_writers_at_once_each_apply_their_change(root):
    """Counter increments by compare-and-swap from several threads: none is lost."""
    uri = f"{root}/counter"
    threads, per_thread = 4, 5

    def add_one_each_time() -> None:
        for _ in range(per_thread):
            while True:
                try:
                    data, etag = storage.read_versioned(uri)
                except storage.NotFound:
                    data, etag = b"0", None
                if storage.write_bytes_if(uri, str(int(data) + 1).encode(), etag):
                    break

    run_at_once(add_one_each_time, threads)
    assert storage.read_bytes(uri) == str(threads * per_thread).encode()


def test_a_local_folder_is_refused(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(MultipltError, match="is a folder"):
        storage.write_bytes_if(str(tmp_path / "d"), b"x", None)
    with pytest.raises(MultipltError, match="is a folder"):
        storage.read_versioned(str(tmp_path / "d"))


@pytest.mark.parametrize("code,status,outcome", [
    ("PreconditionFailed", 412, False),
    ("ConditionalRequestConflict", 409, False),
    ("NotImplemented", 501, storage.ConditionalWriteUnsupported),
    ("AccessDenied", 403, MultipltError),
])
def test_s3_answers_to_a_conditional_put(s3_server, code, status, outcome):
    from botocore.stub import Stubber

    from multiplt.storage import s3

    client = s3.client()
    with Stubber(client) as stub:
        stub.add_client_error("put_object", service_error_code=code, http_status_code=status)
        if outcome is False:
            assert storage.write_bytes_if("s3://bucket/table.parquet", b"x", '"abc"') is False
        else:
            with pytest.raises(outcome) as caught:
                storage.write_bytes_if("s3://bucket/table.parquet", b"x", '"abc"')
            assert "s3://bucket/table.parquet" in str(caught.value)
        stub.assert_no_pending_responses()


def test_s3_puts_carry_the_condition(s3_server):
    from botocore.stub import Stubber

    from multiplt.storage import s3

    with Stubber(s3.client()) as stub:
        stub.add_response("put_object", {}, {"Bucket": "bucket", "Key": "t", "Body": b"x", "IfNoneMatch": "*"})
        stub.add_response("put_object", {}, {"Bucket": "bucket", "Key": "t", "Body": b"x", "IfMatch": '"e"'})
        assert storage.write_bytes_if("s3://bucket/t", b"x", None)
        assert storage.write_bytes_if("s3://bucket/t", b"x", '"e"')
        stub.assert_no_pending_responses()


def test_create_writes_once_and_falls_back_to_a_plain_write_with_a_warning(tmp_path, monkeypatch, caplog):
    """storage.create: True for the call that wrote, False after; on a server without
    conditional writes a plain write where nothing is there, with one warning naming the file."""
    import logging

    from multiplt import storage

    first = str(tmp_path / "a.json")
    assert storage.create(first, b"1", "x") is True
    assert storage.create(first, b"2", "x") is False
    assert storage.read_bytes(first) == b"1"

    def unsupported(uri, data, etag):
        raise storage.ConditionalWriteUnsupported("no If-None-Match here")

    monkeypatch.setattr(storage, "write_bytes_if", unsupported)
    second = str(tmp_path / "b.json")
    with caplog.at_level(logging.WARNING, logger="multiplt.storage"):
        assert storage.create(second, b"1", "writers at once may both write") is True
        assert storage.create(second, b"2", "writers at once may both write") is False
    assert storage.read_bytes(second) == b"1"
    assert f"{second}: no If-None-Match here; written without it: writers at once may both write" in caplog.text
