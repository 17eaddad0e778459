"""A shard's progress bar counts units (files); a unit holding many documents (a table's rows)
shows the documents read so far beside the count while it is read, also off a terminal (a task
log), where the bar otherwise prints a line only when a unit ends."""

from __future__ import annotations

import io
import sys

import pytest

from multiplt import log
from multiplt.corpus import decontam, shard
from multiplt.corpus.config import CorpusConfig
from multiplt.corpus.shard import ShardReader
from multiplt.corpus.sources import Document

FINE = 'def small(x):\n    """Doubles and adds one."""\n    y = x * 2\n    return y + 1\n'


class Table:
    """A table-like source: `rows` documents per unit."""

    kind = "table"

    def __init__(self, units: int, rows: int):
        self.names, self.rows = [f"t{i}.parquet" for i in range(units)], rows

    def units(self):
        return list(self.names)

    def read(self, unit):
        for i in range(self.rows):
            yield Document(f"{unit}#{i}", FINE, {"path": unit, "row": str(i)})


class Files(Table):
    kind = "folder"

    def __init__(self, units: int):
        super().__init__(units, 1)


def progress_lines(monkeypatch, source, limit=None, before=0) -> list[str]:
    pytest.importorskip("tqdm")
    monkeypatch.setattr(log, "NON_TERMINAL_INTERVAL_S", 0)  # a line at every chance
    monkeypatch.setattr(shard, "DOCUMENT_STEP", 2)
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    reader = ShardReader(CorpusConfig(source="s", out="o", typecheck=False, limit=limit),
                         decontam.Benchmarks())
    reader.files["read"] = before  # documents counted before this read (a large count)
    reader.read(source, 0, 1)
    return err.getvalue().splitlines()


def test_a_table_unit_shows_the_documents_read_while_it_is_read(monkeypatch):
    lines = progress_lines(monkeypatch, Table(1, 5))
    during = [line for line in lines if "0/1" in line]
    assert any("documents=2" in line for line in during), lines
    assert any("documents=4" in line for line in during), lines
    assert "1/1" in lines[-1] and "documents=5" in lines[-1], lines


def test_the_count_goes_on_over_units_and_stops_at_the_limit(monkeypatch):
    lines = progress_lines(monkeypatch, Table(3, 3), limit=7)
    assert any("1/3" in line and "documents=3" in line for line in lines), lines
    assert any("documents=6" in line for line in lines), lines
    assert "documents=7" in lines[-1], lines
    assert not any("documents=8" in line for line in lines), lines


def test_a_folder_s_files_are_counted_without_a_document_count(monkeypatch):
    lines = progress_lines(monkeypatch, Files(5))
    assert "5/5" in lines[-1] and not any("documents=" in line for line in lines), lines


def test_a_large_count_is_written_in_full(monkeypatch):
    lines = progress_lines(monkeypatch, Table(1, 3), before=99998)
    assert "documents=100001" in lines[-1], lines  # not tqdm's short form 1e+5
