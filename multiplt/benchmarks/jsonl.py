"""JSON of benchmark files and benchmark sources, read strictly: a record that writes a key twice
is refused. json.loads keeps the last of the two silently, so a benchmark record with
`"language"` twice would be generated (and recorded) in one language for a prompt written in
another, and a source problem with `"prompt"` twice would be built from the one its author may
not have meant. (storage.read_jsonl, which reads the platform's own files and large corpora, keeps
json's rule: what it reads is written by json.dumps, which cannot repeat a key.)"""

from __future__ import annotations

import json
from typing import Iterator

from multiplt.errors import MultipltError


class DuplicateKey(ValueError):
    """A JSON object that writes the key `args[0]` twice."""


def unique_object(pairs: list[tuple[str, object]]) -> dict:
    """json's object_pairs_hook: the object, or DuplicateKey naming its first repeated key."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        raise DuplicateKey(next(key for key, _ in pairs if key in seen or seen.add(key)))
    return obj


def loads(text: str, label: str):
    """The JSON value of `text` (read from `label`), or one MultipltError line naming `label`."""
    try:
        return json.loads(text, object_pairs_hook=unique_object)
    except json.JSONDecodeError as exc:
        raise MultipltError(f"{label} is not JSON: {exc.msg}") from None
    except DuplicateKey as exc:
        raise MultipltError(f"{label} writes the key {exc.args[0]!r} twice in one object") from None


def numbered_lines(text: str, label: str) -> Iterator[tuple[int, object]]:
    """(line number, JSON value) of each non-blank line of a JSONL text read from `label`; a
    MultipltError naming `label` and the line of one that is not JSON or writes a key twice.
    Lines are storage.jsonl_lines's: they end at "\\n" only (a "\\r" before it is dropped)."""
    from multiplt import storage

    for number, line in storage.jsonl_lines(text):
        yield number, loads(line, f"{label}: line {number}")


def read_records(uri: str) -> list[dict]:
    """The records of the benchmark file at `uri` (JSONL, one JSON object per non-blank line),
    or a MultipltError naming the file and line of one that is not an object, not JSON, or
    writes a key twice."""
    from multiplt import storage

    records = []
    for number, record in numbered_lines(storage.read_text(uri), uri):
        if not isinstance(record, dict):
            raise MultipltError(f"{uri}: line {number} is not a JSON object (got "
                                f"{type(record).__name__})")
        records.append(record)
    return records
