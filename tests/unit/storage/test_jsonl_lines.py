"""storage.jsonl_lines: the one JSONL line splitter, which storage.read_jsonl and the strict
benchmark reader (benchmarks.jsonl.numbered_lines) both use, so they count lines alike."""

from __future__ import annotations

import json

import pytest

from multiplt import storage
from multiplt.benchmarks import jsonl
from multiplt.errors import MultipltError

TEXT = ('{"a": "x\u2028y\u2029z\x85w"}\r\n'  # separators str.splitlines would cut at
        "\n"
        "   \r\n"
        '{"b": 2}\n'
        "\n")


def test_lines_end_at_newlines_only_and_blank_ones_are_skipped():
    assert list(storage.jsonl_lines(TEXT)) == [
        (1, '{"a": "x\u2028y\u2029z\x85w"}'), (4, '{"b": 2}')]
    assert list(storage.jsonl_lines("")) == []
    assert list(storage.jsonl_lines('{"c": 3}')) == [(1, '{"c": 3}')]  # no final newline


def test_both_readers_count_lines_as_the_splitter(tmp_path):
    uri = tmp_path / "rows.jsonl"
    uri.write_text(TEXT, encoding="utf-8", newline="")
    numbers = [number for number, _ in storage.jsonl_lines(TEXT)]
    assert [number for number, _ in jsonl.numbered_lines(TEXT, "t")] == numbers
    assert storage.read_jsonl(str(uri)) == [json.loads(line) for _, line in storage.jsonl_lines(TEXT)]
    assert jsonl.read_records(str(uri)) == storage.read_jsonl(str(uri))


@pytest.mark.parametrize("bad", ["{broken", "[1]"])
def test_errors_name_the_same_line(tmp_path, bad):
    text = TEXT + bad + "\n"
    uri = tmp_path / "rows.jsonl"
    uri.write_text(text, encoding="utf-8", newline="")
    line = len(TEXT.split("\n"))  # the line `bad` is on
    with pytest.raises(MultipltError, match=rf"rows\.jsonl line {line} is not"):
        storage.read_jsonl(str(uri))
    with pytest.raises(MultipltError, match=rf"rows\.jsonl: line {line} is not"):
        jsonl.read_records(str(uri))
