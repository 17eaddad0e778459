"""A shard builds a function's `context` only once the row blocks keep it: the rows they drop
(most of a corpus: no docstring, no return value, ...) never get one, and the kept rows' context
is the one extraction gives."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from multiplt.corpus import decontam, extract
from multiplt.corpus.config import CorpusConfig
from multiplt.corpus.shard import ShardReader
from multiplt.corpus.sources import Document

MODULE = '''import os
import re

TABLE = {"a": 1, "b": 2}
PATTERN = re.compile("x+")


def no_doc(x):
    return TABLE.get(x, 0)


async def later(x):
    """Async."""
    return TABLE[x]


def kept(x):
    """Counts."""
    y = len(PATTERN.findall(x)) + TABLE["a"]
    return os.path.join(str(y), "z")
'''


def reader() -> ShardReader:
    return ShardReader(CorpusConfig(source="s", out="o", typecheck=False), decontam.Benchmarks())


def test_only_rows_the_row_blocks_keep_get_their_context(monkeypatch):
    asked = []
    context_for = extract.ModuleNames.context_for

    def counting(self, function):
        asked.append(self.stmts[function].name)
        return context_for(self, function)

    monkeypatch.setattr(extract.ModuleNames, "context_for", counting)
    r = reader()
    r.document(Document("m.py", MODULE.encode(), {"path": "m.py"}))
    assert asked == ["kept"]
    (row,) = r.rows
    assert row["context"] == 'import os\nimport re\nTABLE = {"a": 1, "b": 2}\nPATTERN = re.compile("x+")\n'
    assert not any(key.startswith("_") for key in row)
    dropped = {row["entrypoint"]: (row["reason"], row["context"]) for row in r.excluded}
    assert dropped == {"no_doc": ("no_docstring", ""), "later": ("async_function", "")}


def test_a_document_whose_rows_are_all_dropped_indexes_no_module_names(monkeypatch):
    def refuse(*args):
        raise AssertionError("ModuleNames built for a document none of whose rows is kept")

    monkeypatch.setattr(extract, "ModuleNames", refuse)
    r = reader()
    r.document(Document("m.py", MODULE.replace('"""Counts."""', "pass").encode(), {"path": "m.py"}))
    assert r.rows == [] and len(r.excluded) == 3


STDLIB = ["json/decoder.py", "textwrap.py", "shlex.py", "shutil.py", "base64.py", "posixpath.py"]


@pytest.mark.parametrize("name", STDLIB)
def test_kept_rows_have_the_context_extraction_gives(name):
    data = (Path(sysconfig.get_paths()["stdlib"]) / name).read_bytes()
    doc = Document(f"stdlib:{name}", data, {"path": name})
    eager = {row["id"]: row["context"] for row in extract.extract(doc)[0]}
    r = reader()
    r.document(doc)
    assert r.rows, name
    assert {row["id"]: row["context"] for row in r.rows} == {row["id"]: eager[row["id"]] for row in r.rows}
