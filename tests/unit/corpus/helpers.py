"""Rows as the shard stage makes them, from a snippet of module source."""

from __future__ import annotations

import textwrap

from multiplt.corpus.extract import extract
from multiplt.corpus.sources import Document


def rows_of(source: str, origin: str = "m.py") -> list[dict]:
    rows, excluded = extract(Document(origin, textwrap.dedent(source).encode(), {"path": origin}))
    assert excluded == [], excluded
    return rows


def row_of(source: str) -> dict:
    (row,) = rows_of(source)
    return row


def verdict(block, source: str) -> str | None:
    """None if `block` keeps the one function in `source`, else its reason."""
    excluded: list[dict] = []
    kept = block.run([row_of(source)], excluded)
    assert len(kept) + len(excluded) == 1 and block.stats["in"] == 1
    assert block.stats["out"] == len(kept)
    return None if kept else excluded[0]["reason"]


def nested_calls(levels: int) -> str:
    """A function returning f(f(...f(x)...)), `levels` calls: its syntax tree is levels + 4 deep
    (def, return, the calls, x, Load); nested calls cost the most Python frames a level."""
    return "def g(x):\n    '''d'''\n    return " + "f(" * levels + "x" + ")" * levels + "\n"
