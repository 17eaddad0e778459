"""A shard's excluded rows are packed into columns as they come (ExcludedRows), not kept as a
dict of Python strings each until the shard ends; the excluded part it writes is the frame of
the whole list, as before."""

from __future__ import annotations

import polars as pl

from multiplt.corpus import parts, shard
from multiplt.corpus.config import CorpusConfig
from multiplt.corpus.shard import ExcludedRows

MODULE = '''import os


def no_doc(x):
    return x


async def later(x):
    """Async."""
    return x


def kept(x):
    """Joins."""
    return os.path.join(str(x), "z")
'''


def excluded_row(i: int) -> dict:
    extra = {"row": str(i)} if i % 2 else {"x_col": f"x{i}", "a_col": None}
    return {"content": f"def f{i}(): pass\n", "id": f"t#{i}:1:f{i}", "sha1": str(i), "entrypoint": f"f{i}",
            "context": "", "line": 1, "source": "s", "path": "t", **extra, "reason": "no_docstring",
            "detail": "first statement is not a string"}


def test_excluded_rows_packed_as_they_come_make_the_frame_of_the_whole_list(monkeypatch):
    monkeypatch.setattr(ExcludedRows, "PACK_ROWS", 3)
    rows = [excluded_row(i) for i in range(8)]
    packed = ExcludedRows()
    packed.extend(rows[:5])
    for row in rows[5:]:
        packed.append(row)
    assert len(packed) == 8 and len(packed._rows) < 3  # the rest is in columns
    assert [row["id"] for row in packed] == [row["id"] for row in rows]
    whole = parts.frame(rows, parts.EXCLUDED)
    frame = packed.frame()
    assert frame.columns == whole.columns and frame.schema == whole.schema
    assert frame.rows() == whole.rows()


def test_no_excluded_rows_make_the_empty_frame():
    assert ExcludedRows().frame().schema == parts.frame([], parts.EXCLUDED).schema


def test_the_shard_writes_its_packed_excluded_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(ExcludedRows, "PACK_ROWS", 2)
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        (src / f"m{i}.py").write_text(MODULE)
    cfg = CorpusConfig(source=str(src), out=str(tmp_path / "out"), typecheck=False)
    stats = shard.run_shard(cfg, 0, 1)
    excluded = pl.read_parquet(f"{parts.shard_dir(cfg.out, 0, 1)}/excluded.parquet")
    assert sorted(excluded["id"]) == sorted(f"m{i}.py:{line}:{name}" for i in range(3)
                                            for line, name in ((4, "no_doc"), (8, "later")))
    assert stats["steps"][-1]["out"] == 3
