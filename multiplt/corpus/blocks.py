"""The pipeline block model (datatrove's): a block sees rows, keeps or drops each one with its
named reason, and counts what it did (`in`, `out`, `seconds`)."""

from __future__ import annotations

import time


class Block:
    """Keep-or-drop one row at a time: subclasses define `name`, `reason` and `check`."""

    name = "block"
    reason = ""

    def __init__(self) -> None:
        self.stats = {"in": 0, "out": 0, "seconds": 0.0}

    def check(self, row: dict) -> str | None:
        """None keeps the row; a string drops it, saying why (the `detail` column)."""
        raise NotImplementedError

    def run(self, rows: list[dict], excluded: list[dict]) -> list[dict]:
        start = time.perf_counter()
        kept = []
        for row in rows:
            detail = self.check(row)
            if detail is None:
                kept.append(row)
            else:
                excluded.append(drop(row, self.reason, detail))
        self.count(len(rows), len(kept), time.perf_counter() - start)
        return kept

    def count(self, n_in: int, n_out: int, seconds: float) -> None:
        self.stats["in"] += n_in
        self.stats["out"] += n_out
        self.stats["seconds"] += seconds


def drop(row: dict, reason: str, detail: str) -> dict:
    """The excluded row: its columns (not the parse tree and file text it carried) and why."""
    out = {k: v for k, v in row.items() if not k.startswith("_")}
    out["reason"], out["detail"] = reason, detail
    return out
