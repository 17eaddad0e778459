"""A shard's progress bar counts what the shard will read: with --limit (documents per shard) its
total is at most the limit, not every unit of the shard's slice."""

from __future__ import annotations

import pytest

from multiplt.corpus import decontam, shard
from multiplt.corpus.config import CorpusConfig
from multiplt.corpus.shard import ShardReader
from multiplt.corpus.sources import Document

FINE = 'def small(x):\n    """Doubles and adds one."""\n    y = x * 2\n    return y + 1\n'


class Files:
    """A folder-like source: one document per unit."""

    kind = "folder"

    def __init__(self, count: int):
        self.names = [f"f{i}.py" for i in range(count)]

    def units(self):
        return list(self.names)

    def read(self, unit):
        yield Document(unit, FINE.encode(), {"path": unit})


@pytest.mark.parametrize("limit, units, total, read", [(3, 10, 3, 3), (None, 10, 10, 10), (20, 10, 10, 10),
                                                       (4, 2, 2, 2)])
def test_the_progress_total_is_capped_at_the_limit(monkeypatch, limit, units, total, read):
    bars = []

    def progress(iterable, total=None, desc="", unit="it"):
        bars.append({"total": total, "desc": desc, "unit": unit})
        return iterable

    monkeypatch.setattr(shard, "progress", progress)
    config = CorpusConfig(source="s", out="o", typecheck=False, limit=limit)
    reader = ShardReader(config, decontam.Benchmarks())
    reader.read(Files(units), 0, 1)
    assert bars == [{"total": total, "desc": "corpus shard 0/1", "unit": "file"}]
    assert reader.files["read"] == read
