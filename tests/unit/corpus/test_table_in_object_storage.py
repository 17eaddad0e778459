"""A table source in S3 (moto's server) is read in place: a parquet object in byte ranges (its
footer, then the pages of the rows read), a JSONL(.gz) object as one streamed body. It used to be
copied whole to a temporary file first: disk the size of the input, and the whole download
before the first row. The rows are those of the same file read locally."""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
import io
import json
import random
import tempfile

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from multiplt import storage
from multiplt.corpus import pipeline, sources
from multiplt.corpus.config import CorpusConfig
from multiplt.errors import MultipltError


def fn(name: str, k: int) -> str:
    return f'def {name}(x):\n    """Doc {name}."""\n    y = x * {k} + {k + 1}\n    return y - {k}\n'


@pytest.fixture
def no_temp_files(tmp_path, monkeypatch):
    """Any temporary file or folder made while the test runs fails it (and tempfile's folder is
    one the test watches: it must stay empty)."""
    watched = tmp_path / "tmp"
    watched.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(watched))

    def refused(*_args, **_kwargs):
        raise AssertionError("a temporary file or folder was made")

    for name in ("mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryFile", "SpooledTemporaryFile",
                 "TemporaryDirectory"):
        monkeypatch.setattr(tempfile, name, refused)
    yield watched
    assert not any(watched.iterdir())


@pytest.fixture
def sent(s3_bucket):
    """Bytes each GetObject of storage's S3 client sent while the test runs."""
    sizes: list[int] = []
    events = storage.STORES["s3"].client().meta.events

    def answer(parsed, **_):
        sizes.append(parsed.get("ContentLength", 0))

    events.register("after-call.s3.GetObject", answer)
    yield sizes
    events.unregister("after-call.s3.GetObject", answer)


def rows_table(n: int) -> pl.DataFrame:
    return pl.DataFrame({"content": [fn(f"f{i}", i) for i in range(n)], "repo": [f"r{i}" for i in range(n)]})


def _upload(tmp_path, s3_bucket, name: str, data: bytes) -> tuple[str, str]:
    """(local path, S3 URI) of the same bytes."""
    local = tmp_path / name
    local.write_bytes(data)
    uri = f"{s3_bucket}/tables/{name}"
    storage.write_bytes(uri, data)
    return str(local), uri


def _parquet_bytes(frame: pl.DataFrame, **kwargs) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["t.parquet", "t.jsonl", "t.jsonl.gz"])
def test_an_s3_table_is_read_without_a_temporary_copy(tmp_path, s3_bucket, no_temp_files, name):
    frame = rows_table(2500)
    if name.endswith(".parquet"):
        data = _parquet_bytes(frame, row_group_size=700)
    else:
        data = "".join(json.dumps(row) + "\n" for row in frame.to_dicts()).encode()
        data = gzip.compress(data) if name.endswith(".gz") else data
    local, uri = _upload(tmp_path, s3_bucket, name, data)
    source = sources.resolve(uri)
    docs = source.read(name)
    first = [next(docs) for _ in range(3)]
    assert [d.origin for d in first] == [f"{name}#0", f"{name}#1", f"{name}#2"]
    assert not any(no_temp_files.iterdir())
    docs.close()
    remote = [(d.origin, d.data, d.provenance) for d in source.read(name)]
    here = [(d.origin, d.data, d.provenance) for d in sources.resolve(local).read(name)]
    assert remote == here and len(remote) == 2500


def test_the_first_rows_of_an_s3_parquet_come_before_the_rest_of_it_is_read(tmp_path, s3_bucket, sent,
                                                                              monkeypatch):
    monkeypatch.setattr(sources, "TABLE_BLOCK", 256 << 10)  # read ahead less than this small file
    rng = random.Random(5)
    frame = pl.DataFrame({"content": [rng.randbytes(400).hex() for _ in range(8000)],
                          "repo": [f"r{i}" for i in range(8000)]})
    _local, uri = _upload(tmp_path, s3_bucket, "big.parquet", _parquet_bytes(frame, row_group_size=1000))
    size = len(storage.read_bytes(uri))
    sent.clear()
    rows = sources.read_table(uri)
    assert [next(rows)["repo"] for _ in range(3)] == ["r0", "r1", "r2"]
    assert 0 < sum(sent) < size / 2, (sent, size)  # the footer and the first pages: not the file
    rows.close()
    sent.clear()
    assert [row["repo"] for row in sources.read_table(uri)] == frame["repo"].to_list()
    assert sum(sent) < 1.1 * size  # read ahead, but no byte many times


def test_every_column_type_reads_as_polars_reads_it_locally(tmp_path, s3_bucket):
    """Read in ranges, through pyarrow, a row is the dict polars' `to_dicts` gives of the local
    file: the provenance columns keep the same values and types."""
    n = 5
    table = pa.table({
        "content": pa.array(["a", "b", None, "d\u2028", "e"]),
        "ls": pa.array(["x"] * n, pa.large_string()),
        "i8": pa.array([1, 2, None, 4, -5], pa.int8()),
        "u64": pa.array([1, 2, 3, 2 ** 63, 5], pa.uint64()),
        "f": pa.array([1.5, float("inf"), None, 1e300, -0.0]),
        "f32": pa.array([1.1, 2.2, 3.3, 4.4, 5.5], pa.float32()),
        "b": pa.array([True, False, None, True, False]),
        "bin": pa.array([b"a", b"\xff", None, b"", b"z"]),
        "dict": pa.array(["r", "s", "r", None, "s"]).dictionary_encode(),
        "ts": pa.array([dt.datetime(2020, 1, 1, 1, 2, 3, 456789)] * n, pa.timestamp("us")),
        "tsz": pa.array([dt.datetime(2020, 1, 1, 1, 2, 3, tzinfo=dt.timezone.utc)] * n,
                        pa.timestamp("ms", tz="America/New_York")),
        "date": pa.array([dt.date(2020, 1, 2)] * n),
        "time": pa.array([dt.time(1, 2, 3)] * n),
        "dur": pa.array([dt.timedelta(seconds=3)] * n),
        "dec": pa.array([decimal.Decimal("1.23")] * n, pa.decimal128(10, 2)),
        "lst": pa.array([[1, 2], [], None, [3], [None]]),
        "st": pa.array([{"x": 1, "y": "a"}, None, {"x": None, "y": "b"}, {"x": 2, "y": None},
                        {"x": 3, "y": "c"}]),
        "nul": pa.array([None] * n, pa.null()),
    })
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    local, uri = _upload(tmp_path, s3_bucket, "types.parquet", buffer.getvalue())
    remote = list(sources.read_table(uri))
    assert repr(remote) == repr(list(sources.read_table(local)))
    assert repr(remote) == repr(pl.read_parquet(local).to_dicts())


def test_a_build_from_s3_keeps_the_rows_a_local_build_keeps(tmp_path, s3_bucket):
    frame = rows_table(40)
    data = "".join(json.dumps(row) + "\n" for row in frame.to_dicts()).encode()
    (tmp_path / "src").mkdir()
    for name, payload in (("a.parquet", _parquet_bytes(frame)), ("b.jsonl.gz", gzip.compress(data))):
        _upload(tmp_path / "src", s3_bucket, name, payload)
    outputs = []
    for source, out in ((str(tmp_path / "src"), tmp_path / "local"), (f"{s3_bucket}/tables", tmp_path / "s3")):
        pipeline.build(CorpusConfig(source=source, out=str(out), typecheck=False))
        frames = [pl.read_parquet(out / folder / "part-00000.parquet") for folder in ("functions", "excluded")]
        assert set(frames[0]["source"]) == {source}  # the one column that names the source
        outputs.append([frame.drop("source", strict=False) for frame in frames])
    for here, remote in zip(*outputs):
        assert here.height > 0 and here.equals(remote)


def test_a_bad_s3_table_is_one_error_naming_it(tmp_path, s3_bucket):
    good = _parquet_bytes(rows_table(50))
    for name, data, message in [
            ("cut.parquet", good[:len(good) // 2], "is not a readable parquet file"),
            ("junk.parquet", b"PAR1" + b"\0" * 100, "is not a readable parquet file"),
            ("empty.parquet", b"", "is not a readable parquet file"),
            ("nocontent.parquet", _parquet_bytes(pl.DataFrame({"text": ["x"]})),
             r"has no `content` column \(columns: text\)"),
            ("bad.jsonl", b'{"content": "x"}\n{"content": \n', "line 2 is not valid JSON"),
            ("cut.jsonl.gz", gzip.compress(b'{"content": "x"}\n' * 2000)[:-40], "is not valid gzip")]:
        _local, uri = _upload(tmp_path, s3_bucket, name, data)
        with pytest.raises(MultipltError, match=f"^{uri} {message}"):
            list(sources.read_table(uri))
    missing = f"{s3_bucket}/tables/gone.parquet"
    with pytest.raises(storage.NotFound, match=f"^no such object: {missing}$"):
        list(sources.read_table(missing))
