"""A table source is read a batch of rows at a time and stops at --limit: a shard never holds a
whole parquet or JSONL file (nor the list of its rows) in memory. Sharding is unchanged: shard K
of N reads the rows of the K-th round-robin slice of the recorded files."""

from __future__ import annotations

import gzip
import itertools
import json

import polars as pl
import pytest

from multiplt.corpus import parts, pipeline, sources
from multiplt.corpus.config import CorpusConfig
from multiplt.errors import MultipltError


def fn(name: str, k: int) -> str:
    return f'def {name}(x):\n    """Doc {name}."""\n    y = x * {k} + {k + 1}\n    return y - {k}\n'


def table(rows: int, prefix: str = "f") -> pl.DataFrame:
    return pl.DataFrame({"content": [fn(f"{prefix}{i}", i) for i in range(rows)],
                         "repo": [f"r{i}" for i in range(rows)]})


def test_a_parquet_table_is_converted_a_batch_at_a_time(tmp_path, monkeypatch):
    """Reading the first rows turns only the first batch into dicts (the old reader made a dict
    of every row before the first one was used); reading on gives every row, in order, across
    the file's row groups."""
    path = tmp_path / "t.parquet"
    table(50).write_parquet(path, row_group_size=10)
    monkeypatch.setattr(sources, "TABLE_BATCH_ROWS", 4)
    converted = []
    to_dicts = pl.DataFrame.to_dicts

    def counting(df):
        converted.append(df.height)
        return to_dicts(df)

    monkeypatch.setattr(pl.DataFrame, "to_dicts", counting)
    first = list(itertools.islice(sources.read_table(str(path)), 3))
    assert [row["repo"] for row in first] == ["r0", "r1", "r2"]
    assert converted == [4]
    converted.clear()
    assert list(sources.read_table(str(path))) == to_dicts(pl.read_parquet(path))
    assert max(converted) == 4 and sum(converted) == 50


@pytest.mark.parametrize("name", ["rows.jsonl", "rows.jsonl.gz"])
def test_a_jsonl_build_stops_reading_at_the_limit(tmp_path, name):
    """Lines after the --limit-th row are never read: a broken line (or a truncated gzip
    stream) there does not stop the build; the old reader parsed the whole file first."""
    lines = [json.dumps({"content": fn(f"g{i}", i)}) for i in range(400)]
    lines[300] = "{not json"
    data = ("\n".join(lines) + "\n").encode()
    path = tmp_path / name
    if name.endswith(".gz"):
        packed = gzip.compress(data)
        path.write_bytes(packed[:len(packed) * 3 // 4])  # cut short: not valid gzip at its end
    else:
        path.write_bytes(data)
    out = tmp_path / "out"
    funnel = pipeline.build(CorpusConfig(source=str(path), out=str(out), typecheck=False, limit=5))
    assert funnel["files"] == {"read": 5, "syntax_error": 0}
    kept = pl.read_parquet(out / "functions" / "part-00000.parquet")
    assert sorted(kept["entrypoint"]) == [f"g{i}" for i in range(5)]
    # without a limit the broken line is one clear error naming the file
    with pytest.raises(MultipltError, match=rf"{name} (line 301 is not valid JSON|is not valid gzip)"):
        pipeline.build(CorpusConfig(source=str(path), out=str(tmp_path / "all"), typecheck=False))


def test_jsonl_lines_are_split_and_checked_as_before(tmp_path):
    """Line by line, lines end at \\n only (U+2028 stays inside a string), blank lines are
    skipped, and a bad line names its number."""
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"content": "a\xe2\x80\xa8b", "k": 1}\n\n  \r\n{"content": "x"}\r\n')
    assert list(sources.read_table(str(path))) == [{"content": "a\u2028b", "k": 1}, {"content": "x"}]
    path.write_bytes(b'{"content": "x"}\n[1]\n')
    with pytest.raises(MultipltError, match=r"r.jsonl line 2 is not a JSON object \(got list\)"):
        list(sources.read_table(str(path)))
    path.write_bytes(b'{"content": "x"}\n{"text": "y"}\n')
    with pytest.raises(MultipltError, match=r"r.jsonl line 2 has no `content` field"):
        list(sources.read_table(str(path)))
    path.write_bytes(b'{"content": "x"}\n{"content": "\xff"}\n')
    with pytest.raises(MultipltError, match=r"r.jsonl line 2 is not UTF-8 text"):
        list(sources.read_table(str(path)))


def test_a_corrupt_gzip_table_is_one_clear_error(tmp_path):
    data = bytearray(gzip.compress(b'{"content": "x"}\n' * 1000))
    data[30:40] = b"\0" * 10
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(MultipltError, match="bad.jsonl.gz is not valid gzip"):
        list(sources.read_table(str(path)))


def test_each_shard_reads_the_rows_of_its_slice_of_the_files(tmp_path):
    """--shard K/N takes the K-th of N round-robin slices of the sorted files, as before
    streaming; --limit counts documents per shard, across its files."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a", "b", "c"):
        table(3, prefix=name).write_parquet(src / f"{name}.parquet")
    out = tmp_path / "out"

    def ids(k: int) -> list[str]:
        folder = parts.shard_dir(str(out), k, 2)
        frames = [pl.read_parquet(f"{folder}/{part}.parquet") for part in ("kept", "excluded")]
        return sorted(i.split(":")[0] for frame in frames for i in frame["id"])

    for k in (0, 1):
        pipeline.build(CorpusConfig(source=str(src), out=str(out), typecheck=False, limit=4), (k, 2))
    assert ids(0) == ["a.parquet#0", "a.parquet#1", "a.parquet#2", "c.parquet#0"]
    assert ids(1) == ["b.parquet#0", "b.parquet#1", "b.parquet#2"]
    assert json.loads((out / "_work" / "input.json").read_text())["units"] == [
        "a.parquet", "b.parquet", "c.parquet"]
