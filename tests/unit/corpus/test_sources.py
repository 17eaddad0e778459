"""Sources: folders of .py (symlinks not followed), tables with `content`, stdlib, bad specs."""

import json
import os

import polars as pl
import pytest

from multiplt.corpus import sources
from multiplt.errors import MultipltError


def test_py_folder_is_recursive_sorted_and_skips_symlinks(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x.py").write_text("x = 1\n")
    (tmp_path / "a.py").write_text("a = 1\n")
    (tmp_path / "notes.txt").write_text("no")
    os.symlink(tmp_path / "a.py", tmp_path / "link.py")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "o.py").write_text("o = 1\n")
    os.symlink(outside, tmp_path / "linked_dir")
    source = sources.resolve(str(tmp_path))
    assert source.units() == ["a.py", "b/x.py"]
    (doc,) = source.read("b/x.py")
    assert doc.origin == "b/x.py" and doc.data == b"x = 1\n"


def test_tables_keep_other_columns_as_provenance(tmp_path):
    pl.DataFrame({"content": ["def f(): pass", None], "max_stars_repo_name": ["o/r", "o/s"],
                  "id": ["a", "b"], "size": [13, 0]}).write_parquet(tmp_path / "p.parquet")
    source = sources.resolve(str(tmp_path))
    assert source.kind == "table" and source.units() == ["p.parquet"]
    docs = list(source.read("p.parquet"))
    assert docs[0].origin == "p.parquet#0" and docs[0].data == "def f(): pass"
    assert docs[0].provenance == {"path": "p.parquet", "row": "0", "max_stars_repo_name": "o/r",
                                  "source_id": "a", "size": "13"}
    assert docs[1].data is None


def test_jsonl_file(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"content": "x = 1\\n", "repo": "r"}\n')
    (doc,) = sources.resolve(str(path)).read("rows.jsonl")
    assert doc.data == "x = 1\n" and doc.provenance["repo"] == "r"


def test_stdlib_is_the_interpreters_library():
    source = sources.resolve("stdlib")
    units = source.units()
    assert "json/decoder.py" in units and not any("site-packages" in u for u in units)
    (doc,) = source.read("json/decoder.py")
    assert doc.origin == "stdlib:json/decoder.py"


def test_bad_sources_are_clear_errors(tmp_path):
    with pytest.raises(MultipltError, match="does not exist"):
        sources.resolve(str(tmp_path / "missing"))
    with pytest.raises(MultipltError, match="unknown scheme gs://"):
        sources.resolve("gs://bucket/x")
    with pytest.raises(MultipltError, match="empty corpus"):
        sources.resolve(str(tmp_path))
    with pytest.raises(MultipltError, match="hf://datasets/OWNER/NAME"):
        sources.resolve("hf://models/x")
    with pytest.raises(MultipltError, match="file:// URIs name no host"):  # a relative path after file://
        sources.resolve("file://c/src")
    pl.DataFrame({"text": ["x"]}).write_parquet(tmp_path / "t.parquet")
    source = sources.resolve(str(tmp_path / "t.parquet"))
    with pytest.raises(MultipltError, match="no `content` column"):
        list(source.read("t.parquet"))


def test_columns_named_like_ours_or_testgens_get_a_source_prefix(tmp_path):
    # `tests` is what testgen reads as a function's known tests (a list of str): a source's
    # column of that name is provenance, not known tests; the dedup signatures and `_` keys are ours
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"content": "x = 1\n", "tests": ["assert f(1) == 2"], "minhash": 3,
                                "bands": "b", "exact_key": "k", "_node": "n", "repo": "r"}) + "\n")
    (doc,) = sources.resolve(str(path)).read("rows.jsonl")
    assert doc.provenance == {"path": "rows.jsonl", "row": "0", "source_tests": "['assert f(1) == 2']",
                              "source_minhash": "3", "source_bands": "b", "source_exact_key": "k",
                              "source__node": "n", "repo": "r"}


def test_text_utf8_cannot_hold_is_escaped_in_ids_and_provenance(tmp_path):
    # a lone surrogate in a JSON column, or an undecodable byte in a file name, would make the
    # parquet writer raise: it is written as its backslash escape
    path = tmp_path / "rows.jsonl"
    path.write_text('{"content": "x = 1\\n", "repo": "a\\ud83d", "\\udc80": "v"}\n')
    (doc,) = sources.resolve(str(path)).read("rows.jsonl")
    assert doc.provenance == {"path": "rows.jsonl", "row": "0", "repo": "a\\ud83d", "\\udc80": "v"}
    folder = tmp_path / "py"
    folder.mkdir()
    (folder / "ok.py").write_text("x = 1\n")
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.py"), "wb") as f:
        f.write(b"y = 2\n")
    source = sources.resolve(str(folder))
    unit = next(u for u in source.units() if u != "ok.py")
    (doc,) = source.read(unit)
    assert doc.origin == doc.provenance["path"] == "caf\\udce9.py" and doc.data == b"y = 2\n"
    pl.DataFrame({k: [v] for k, v in doc.provenance.items()}).write_parquet(tmp_path / "p.parquet")
