"""Ranged and streaming reads: `read_range` (a backend method of the Store protocol; on S3 one GET
with a Range header), `open_ranged` (a seekable read-only file object over it, reading ahead in
blocks) and `open_stream` (a file read front to back as it is consumed). Before them the storage
API could only read a whole object (read_bytes) or copy it to a local file (copy), so a reader
that needed a parquet footer, or one pass over a large table, fetched the whole object first.
Every test runs on a local folder and on moto's S3 server."""

from __future__ import annotations

import io
import random

import pytest

from multiplt import storage
from multiplt.errors import MultipltError, PlatformError

DATA = random.Random(7).randbytes(300_000)


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return f"file://{tmp_path}"
    return request.getfixturevalue("s3_bucket")


@pytest.fixture
def s3_gets(s3_bucket):
    """[Range header, bytes sent] of each GetObject storage's S3 client makes."""
    made: list[list] = []
    events = storage.STORES["s3"].client().meta.events

    def asked(params, **_):
        made.append([params.get("Range"), 0])

    def answered(parsed, **_):
        made[-1][1] = parsed.get("ContentLength", 0)

    events.register("before-parameter-build.s3.GetObject", asked)
    events.register("after-call.s3.GetObject", answered)
    yield made
    events.unregister("before-parameter-build.s3.GetObject", asked)
    events.unregister("after-call.s3.GetObject", answered)


@pytest.fixture
def gets(root, request):
    """s3_gets on S3; locally an empty list."""
    return request.getfixturevalue("s3_gets") if root.startswith("s3://") else []


def test_read_range_reads_the_bytes_asked_for_with_the_size_and_version(root, gets):
    uri = storage.join(root, "blob.bin")
    storage.write_bytes(uri, DATA)
    etag = next(info.etag for info in storage.listing(root) if info.uri == uri)
    assert storage.read_range(uri, 1000, 500) == (DATA[1000:1500], len(DATA), etag)
    assert storage.read_range(uri, -700, 700, etag) == (DATA[-700:], len(DATA), etag)
    assert storage.read_range(uri, -700, 10) == (DATA[-700:-690], len(DATA), etag)
    assert storage.read_range(uri, len(DATA) - 5, 100) == (DATA[-5:], len(DATA), etag)  # cut at the end
    assert storage.read_range(uri, -10 * len(DATA), 10) == (DATA[:10], len(DATA), etag)
    assert storage.read_range(uri, len(DATA), 100) == (b"", len(DATA), etag)  # at the end: none
    if gets:  # S3: each read was one ranged GET, which sent only what was asked for
        assert [got for _range, got in gets[:5]] == [500, 700, 700, 5, len(DATA)]
        assert gets[0][0] == "bytes=1000-1499" and gets[1][0] == "bytes=-700"
    empty = storage.join(root, "empty.bin")
    storage.write_bytes(empty, b"")
    assert storage.read_range(empty, 0, 100)[:2] == (b"", 0)
    assert storage.read_range(empty, -100, 100)[:2] == (b"", 0)


def test_read_range_of_another_version_missing_file_or_folder_is_an_error_naming_it(root):
    uri = storage.join(root, "blob.bin")
    storage.write_bytes(uri, DATA)
    _data, _size, etag = storage.read_range(uri, 0, 10)
    storage.write_bytes(uri, DATA[::-1])  # rewritten: a new version
    with pytest.raises(storage.Changed, match=f"^{uri} changed while it was being read"):
        storage.read_range(uri, 0, 10, etag)
    assert isinstance(storage.Changed("x"), PlatformError)  # a rerun reads one version
    missing = storage.join(root, "nothing.bin")
    with pytest.raises(storage.NotFound, match=f"no such (file|object): {missing}$"):
        storage.read_range(missing, 0, 10)
    storage.write_bytes(storage.join(root, "dir", "x"), b"x")
    with pytest.raises(MultipltError, match="folder"):
        storage.read_range(storage.join(root, "dir") + ("/" if root.startswith("s3://") else ""), 0, 10)


def test_a_ranged_file_reads_seeks_and_tells_as_a_file_does(root):
    uri = storage.join(root, "blob.bin")
    storage.write_bytes(uri, DATA)
    rng = random.Random(1)
    want = io.BytesIO(DATA)
    with storage.open_ranged(uri, block_size=4096, cache_bytes=16384) as got:
        assert got.size == len(DATA) and got.readable() and got.seekable()
        for _ in range(400):
            op = rng.choice(["read", "read", "seek", "seek_cur", "seek_end", "readinto"])
            if op == "read":
                n = rng.choice([0, 1, 7, 100, 4095, 4096, 4097, 20000, -1])
                assert got.read(n) == want.read(n)
            elif op == "readinto":
                a, b = bytearray(rng.randrange(1, 9000)), None
                b = bytearray(len(a))
                assert got.readinto(a) == want.readinto(b) and a == b
            elif op == "seek":
                offset = rng.randrange(0, len(DATA) + 100)
                assert got.seek(offset) == want.seek(offset)
            elif op == "seek_cur":
                offset = rng.randrange(-want.tell(), 5000)
                assert got.seek(offset, io.SEEK_CUR) == want.seek(offset, io.SEEK_CUR)
            else:
                offset = rng.randrange(-len(DATA), 10)
                assert got.seek(offset, io.SEEK_END) == want.seek(offset, io.SEEK_END)
            assert got.tell() == want.tell()
        with pytest.raises(ValueError, match="negative seek position"):
            got.seek(-1)
    assert got.closed
    with pytest.raises(ValueError):
        got.read(1)


def test_a_sequential_scan_makes_one_request_per_block_not_per_read(root, gets):
    uri = storage.join(root, "blob.bin")
    storage.write_bytes(uri, DATA)
    block = 32 << 10
    with storage.open_ranged(uri, block_size=block) as f:
        chunks = iter(lambda: f.read(1000), b"")
        assert b"".join(chunks) == DATA
        assert f.requests == -(-len(DATA) // block) == 10  # 300 reads of 1000 bytes
        assert f.fetched == len(DATA)
    if gets:
        assert len(gets) == 10 and sum(got for _range, got in gets) == len(DATA)


def test_opening_at_the_tail_reads_only_the_tail(root, gets):
    """A parquet reader's first reads (the size, then the footer at the end) are one request."""
    uri = storage.join(root, "blob.bin")
    storage.write_bytes(uri, DATA)
    with storage.open_ranged(uri, tail=1000) as f:
        assert f.seek(0, io.SEEK_END) == len(DATA)
        f.seek(-1000, io.SEEK_END)
        assert f.read() == DATA[-1000:]
        assert (f.requests, f.fetched) == (1, 1000)
    if gets:
        assert gets == [["bytes=-1000", 1000]]
    with storage.open_ranged(uri, tail=10 * len(DATA)) as whole:  # more than the file: all of it
        assert whole.read() == DATA and whole.requests == 1


def test_a_ranged_file_of_a_rewritten_file_is_an_error_not_a_mix(root):
    uri = storage.join(root, "blob.bin")
    storage.write_bytes(uri, DATA)
    with storage.open_ranged(uri, block_size=1000) as f:
        assert f.read(10) == DATA[:10]
        storage.write_bytes(uri, bytes(len(DATA)))
        assert f.read(10) == DATA[10:20]  # in the block read already
        with pytest.raises(storage.Changed, match=f"{uri} changed while it was being read"):
            f.read(5000)


def test_a_missing_file_is_an_error_when_it_is_opened(root):
    missing = storage.join(root, "nothing.parquet")
    with pytest.raises(storage.NotFound, match=f"{missing}$"):
        storage.open_ranged(missing)
    with pytest.raises(storage.NotFound, match=f"{missing}$"):
        storage.open_stream(missing)


def test_a_stream_reads_the_file_front_to_back(root, gets):
    uri = storage.join(root, "lines.txt")
    text = b"".join(b"line %d\n" % i for i in range(50_000))
    storage.write_bytes(uri, text)
    with storage.open_stream(uri) as stream:
        assert next(iter(stream)) == b"line 0\n"
        assert stream.read(7) == b"line 1\n"
        assert b"".join(stream) == text[14:]
    if gets:
        assert len(gets) == 1 and gets[0] == [None, len(text)]  # one GET of the whole body
    empty = storage.join(root, "empty.txt")
    storage.write_bytes(empty, b"")
    with storage.open_stream(empty) as stream:
        assert stream.read() == b""


# ---- S3: bodies cut short, timeouts ---------------------------------------------------------------
class _CutBody:
    """A GetObject body that raises ResponseStreamingError after `after` bytes (a dropped
    connection in the middle of an answer)."""

    def __init__(self, body, after: int):
        self.body, self.left = body, after

    def read(self, amt=None):
        import botocore.exceptions as bex

        if self.left <= 0 or amt is None:  # read() of the whole body: what came is lost
            raise bex.ResponseStreamingError(error="connection reset by peer")
        data = self.body.read(min(amt, self.left))
        self.left -= len(data)
        return data

    def close(self):
        self.body.close()


@pytest.fixture
def cut_bodies(s3_bucket):
    """cut(n, after): the next `n` GetObject bodies storage's client (for the environment at the
    call) receives break after `after` bytes."""
    plan: list[int] = []
    clients = []

    def cut(parsed, **_):
        if plan and "Body" in parsed:
            parsed["Body"] = _CutBody(parsed["Body"], plan.pop(0))

    def arm(n: int, after: int) -> None:
        client = storage.STORES["s3"].client()
        if client not in clients:
            client.meta.events.register("after-call.s3.GetObject", cut)
            clients.append(client)
        plan.extend([after] * n)

    yield arm
    for client in clients:
        client.meta.events.unregister("after-call.s3.GetObject", cut)


def test_a_stream_cut_short_goes_on_where_it_stopped(s3_bucket, cut_bodies, s3_gets):
    uri = storage.join(s3_bucket, "big.bin")
    storage.write_bytes(uri, DATA)
    cut_bodies(2, 100_000)  # the first answer and the first resumed one break
    with storage.open_stream(uri) as stream:
        assert stream.read() == DATA
    assert [r for r, _got in s3_gets] == [None, "bytes=100000-", "bytes=200000-"]


def test_a_ranged_read_cut_short_is_asked_for_again(s3_bucket, cut_bodies, s3_gets):
    uri = storage.join(s3_bucket, "big.bin")
    storage.write_bytes(uri, DATA)
    cut_bodies(2, 1000)
    assert storage.read_range(uri, 0, 5000)[0] == DATA[:5000]
    assert [r for r, _got in s3_gets] == ["bytes=0-4999"] * 3


def test_a_body_cut_short_every_time_fails_after_the_attempts(s3_bucket, cut_bodies, monkeypatch):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    uri = storage.join(s3_bucket, "big.bin")
    storage.write_bytes(uri, DATA)
    cut_bodies(2, 1000)
    with pytest.raises(PlatformError, match=f"S3 failure while trying to read {uri}"):
        storage.read_range(uri, 0, 5000)
    cut_bodies(2, 0)  # a stream gives up after the attempts in a row that bring nothing
    with pytest.raises(PlatformError, match=f"S3 failure while trying to read {uri}"):
        with storage.open_stream(uri) as stream:
            stream.read()


def test_a_stream_resumed_after_a_rewrite_is_an_error_not_a_mix(s3_bucket, cut_bodies):
    uri = storage.join(s3_bucket, "big.bin")
    storage.write_bytes(uri, DATA)
    cut_bodies(1, 1000)
    with storage.open_stream(uri) as stream:
        storage.write_bytes(uri, DATA[::-1])
        with pytest.raises(storage.Changed, match=f"{uri} changed while it was being read"):
            stream.read()


@pytest.mark.timeout(60)
def test_a_ranged_read_of_an_endpoint_that_never_answers_fails_after_the_read_timeout(
        silent_endpoint, monkeypatch):
    from tests.support.stalled_s3 import use_endpoint

    use_endpoint(monkeypatch, silent_endpoint.url, 2, MULTIPLT_S3_READ_TIMEOUT="0.3")
    with pytest.raises(PlatformError, match="the S3 endpoint did not answer in time to read s3://bucket/x"):
        storage.read_range("s3://bucket/x.parquet", -100, 100)
    assert len(silent_endpoint.accepted) == 2  # the client's attempts


# ---- parquet ---------------------------------------------------------------------------------------
def test_parquet_rows_read_only_the_footer(root, gets):
    """`parquet_rows` of an S3 object read it whole before (dags: has_rows of a dataset)."""
    import polars as pl

    uri = storage.join(root, "t.parquet")
    rng = random.Random(2)
    storage.write_parquet(uri, pl.DataFrame({"content": [rng.randbytes(600).hex() for _ in range(4000)]}))
    size = storage.listing(root)[0].size
    assert storage.parquet_rows(uri) == 4000
    if gets:
        assert gets == [["bytes=-%d" % storage.PARQUET_FOOTER_READ, storage.PARQUET_FOOTER_READ]]
        assert storage.PARQUET_FOOTER_READ < size / 20
    good = storage.read_bytes(uri)
    for name, data in [("cut.parquet", good[:len(good) // 2]), ("empty.parquet", b""),
                       ("junk.parquet", b"PAR1" + bytes(100))]:
        bad = storage.join(root, name)
        storage.write_bytes(bad, data)
        with pytest.raises(MultipltError, match=f"^{bad} is not a readable parquet file: "):
            storage.parquet_rows(bad)
