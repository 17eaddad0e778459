"""read_jsonl: lines end at "\n" only (a "\r" before it is dropped), so JSON written with
ensure_ascii=False, which keeps U+2028, U+2029 and U+0085 raw inside strings, reads back."""

from __future__ import annotations

import json

import pytest

from multiplt import storage
from multiplt.errors import MultipltError

# str.splitlines cuts at each of these; JSON keeps the first three raw (ensure_ascii=False)
# and escapes the others (control characters)
SEPARATORS = "a\u2028b\u2029c\x85d\x0be\x0cf\x1cg\x1dh\x1ei"


@pytest.mark.parametrize("name", ["rows.jsonl", "rows.jsonl.gz"])
def test_unicode_line_separators_inside_strings_read_back(tmp_path, name):
    rows = [{"text": SEPARATORS, "n": 1}, {"text": "\u2028", "n": 2}]
    uri = str(tmp_path / name)
    storage.write_text(uri, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    assert "\u2028" in storage.read_text(uri)  # raw, not escaped
    assert storage.read_jsonl(uri) == rows


def test_crlf_and_blank_lines_as_before(tmp_path):
    uri = tmp_path / "rows.jsonl"
    uri.write_bytes(b'{"a": 1}\r\n\r\n   \n{"a": 2}\n\n')
    assert storage.read_jsonl(str(uri)) == [{"a": 1}, {"a": 2}]


def test_error_names_the_line_counted_at_newlines_only(tmp_path):
    uri = tmp_path / "rows.jsonl"
    uri.write_text(json.dumps({"a": "x\u2028y\u2029z"}, ensure_ascii=False) + "\n\n{broken\n",
                   encoding="utf-8")
    with pytest.raises(MultipltError, match=r"line 3 is not valid JSON"):
        storage.read_jsonl(str(uri))
    uri.write_text(json.dumps({"a": "\u2028"}, ensure_ascii=False) + "\n[1]\n", encoding="utf-8")
    with pytest.raises(MultipltError, match=r"line 2 is not a JSON object"):
        storage.read_jsonl(str(uri))
